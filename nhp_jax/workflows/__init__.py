"""Workflows: the main job and the studies, built on the layers below (data, train, evaluation).

The top layer of the library. Binaries in `experiments/` parse flags, build
configs and make one call here; nothing below imports this package.
"""
