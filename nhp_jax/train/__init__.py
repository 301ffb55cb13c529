"""Training: train state, pure steps, data parallelism, checkpoints and the loop.

This package file imports nothing, so `nhp_jax.train.host_devices` can run
before JAX is imported.
"""
