"""What every layer shares: settings, the CLI, local model assets and the stack runner."""
