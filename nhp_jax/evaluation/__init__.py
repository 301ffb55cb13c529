"""Evaluation: the three HPatches benchmarks (verification, matching, retrieval) as JAX kernels."""
