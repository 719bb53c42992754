"""Training runs started from the CLI or `POST /v1/train`: read the database, train, evaluate, register the
version."""
