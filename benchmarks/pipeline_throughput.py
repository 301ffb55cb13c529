"""Throughput of the training input pipelines, as one JSON line.

Builds a synthetic PatchSet of realistic size (random uint8 patches; by
default memory-mapped from .npy files in a temporary folder, as the dataset
cache is), then drains `descriptor_dataset` and `denoiser_dataset` through
`as_numpy` for a fixed time each and prints

  {"triplets_per_s": ..., "pairs_per_s": ..., "triplet_indices_per_s": ...,
   "batch": ..., "labels": ..., "memmap": ..., "seconds": ..., "machine": ...}

triplet_indices_per_s is the numpy triplet sampler alone. The files were just
written, so they are in the page cache: this measures the pipeline, not the
disk.

  python -m benchmarks.pipeline_throughput --labels=100000 --batch_size=256
"""

import argparse
import json
import os
import platform
import tempfile
import time

import numpy as np

from nhp_jax import atomic
from nhp_jax import host_devices
from nhp_jax.data import layout
from nhp_jax.data import patchset
from nhp_jax.data import pipelines
from nhp_jax.data import triplets

_TILE_LABELS = 1024  # random labels repeated to the requested size: fast to build


def _synthetic_array(rng: np.random.Generator, num_labels: int) -> np.ndarray:
  """(num_labels, 16, 32, 32) uint8 random patches (a random block, tiled)."""
  p = layout.PATCH_SIZE
  tile = rng.integers(0, 256, (min(_TILE_LABELS, num_labels), layout.NUM_IMAGES, p, p),
                      dtype=np.uint8)
  return np.resize(tile, (num_labels, layout.NUM_IMAGES, p, p))


def _memmapped(array: np.ndarray, path: str) -> np.ndarray:
  with atomic.atomic_path(path, suffix=".npy") as tmp:
    np.save(tmp, array)
  return np.load(path, mmap_mode="r")


def _rate(batches, batch_size: int, seconds: float, warmup: int = 20) -> float:
  """Patches (pairs or triplets) per second drained from an iterator of batches."""
  for _ in range(warmup):
    next(batches)
  count, start = 0, time.perf_counter()
  while time.perf_counter() - start < seconds:
    next(batches)
    count += 1
  return count * batch_size / (time.perf_counter() - start)


def _sampler_rate(num_labels: int, batch_size: int, n: int = 1_000_000) -> float:
  rng = np.random.default_rng(0)
  start = time.perf_counter()
  triplets.sample_triplets(rng, num_labels, n, "regular", distinct_block=batch_size)
  return n / (time.perf_counter() - start)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--labels", type=int, default=100_000,
                      help="labels of the synthetic PatchSet (x16 patches, x2 arrays)")
  parser.add_argument("--batch_size", type=int, default=50)
  parser.add_argument("--seconds", type=float, default=5.0,
                      help="measuring time per pipeline")
  parser.add_argument("--triplets_per_epoch", type=int, default=100_000)
  parser.add_argument("--memmap", action=argparse.BooleanOptionalAction, default=True,
                      help="memory-map the arrays from .npy files, as the cache does")
  args = parser.parse_args()

  rng = np.random.default_rng(0)
  with tempfile.TemporaryDirectory() as folder:
    clean, noisy = (_synthetic_array(rng, args.labels) for _ in range(2))
    if args.memmap:
      clean = _memmapped(clean, os.path.join(folder, "clean.npy"))
      noisy = _memmapped(noisy, os.path.join(folder, "noisy.npy"))
    patches = patchset.PatchSet(("synthetic",), np.array([0, args.labels], np.int64),
                                clean, noisy)
    descriptor = pipelines.descriptor_dataset(
        patches, batch_size=args.batch_size, seed=0,
        triplets_per_epoch=args.triplets_per_epoch,
        schedule=triplets.DEFAULT_CURRICULUM,
        far_gap=min(triplets.DEFAULT_FAR_GAP, args.labels // 2))
    triplets_per_s = _rate(pipelines.as_numpy(descriptor), args.batch_size, args.seconds)
    denoiser = pipelines.denoiser_dataset(patches, batch_size=args.batch_size, seed=0)
    pairs_per_s = _rate(pipelines.as_numpy(denoiser), args.batch_size, args.seconds)

  print(json.dumps({
      "triplets_per_s": round(triplets_per_s),
      "pairs_per_s": round(pairs_per_s),
      "triplet_indices_per_s": round(_sampler_rate(args.labels, args.batch_size)),
      "batch": args.batch_size,
      "labels": args.labels,
      "memmap": args.memmap,
      "seconds": args.seconds,
      "machine": f"{platform.machine()}, {host_devices.usable_cores()} cpus, "
                 f"{platform.system()}",
  }))


if __name__ == "__main__":
  main()
