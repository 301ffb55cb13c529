"""nhp_jax: learn local patch descriptors that survive noise, and score them on HPatches."""

__version__ = "0.1.0"
