"""Training: train state, pure steps, data parallelism, checkpoints and the loop.

This package file imports nothing, so importing one of its modules loads
only what that module needs.
"""
