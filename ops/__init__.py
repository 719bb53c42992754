"""Operator tools: the `tandem` CLI, the stack runner, the load harness, the cluster smoke test and the local
model assets."""
