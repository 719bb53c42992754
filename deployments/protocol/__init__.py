"""The wire types: what the routes and the model servers exchange, one module per pipeline."""
