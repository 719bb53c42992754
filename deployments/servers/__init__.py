"""The model servers: one Ray Serve deployment per model, each a thin shell around a model package."""
