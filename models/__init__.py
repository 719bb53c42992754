"""Pure model code: architectures, data preparation, training and evaluation. No Ray, HTTP or database driver."""
