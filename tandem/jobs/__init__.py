"""Long-running work started from the CLI or the training API: train, evaluate, register."""
