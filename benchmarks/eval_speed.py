"""Wall time of the three HPatches benchmarks at split-a scale, as one JSON line.

Random descriptors shaped like split a's test set: 40 sequences totalling
59,532 patches x 16 images x 128-d. Each patch has a base descriptor and
every image adds noise growing from e to h to t, so positives are closer
than negatives and the scores are neither 0 nor 1. Verification: 1,000,000
pairs per file (positives, intra, inter) drawn like the official generator
but from a seeded `np.random.Generator`; retrieval: 10,000 queries and
20,000 distractors, 7 pool sizes. Prints

  {"verification_s": ..., "matching_s": ..., "retrieval_s": ..., "total_s": ...,
   "cpu_s": {...}, "peak_rss_mib": ..., "device": ..., "mAP": {...}, ...}

Wall times include compilation (a fresh process compiles every kernel once);
cpu_s are the process's CPU seconds per task (all threads).

  python -m benchmarks.eval_speed
  python -m benchmarks.eval_speed --patches=6000 --pairs=100000  # a quick look
"""

import argparse
import json
import platform
import resource
import time

import jax
import numpy as np

from nhp_jax.evaluation import matching
from nhp_jax.evaluation import retrieval
from nhp_jax.evaluation import types
from nhp_jax.evaluation import verification

_NOISE = np.array([0.0] + [1.0] * 5 + [1.4] * 5 + [1.9] * 5, np.float32)  # ref, e, h, t


def descriptor_set(rng: np.random.Generator, num_sequences: int, num_patches: int,
                   dim: int) -> types.DescriptorSet:
  """Random (L, 16, D) float32 descriptors: base per patch + noise per image."""
  weights = rng.uniform(0.3, 1.0, num_sequences)
  counts = np.floor(weights / weights.sum() * num_patches).astype(np.int64)
  counts[: num_patches - counts.sum()] += 1
  descs = np.empty((num_patches, 16, dim), np.float32)
  for start in range(0, num_patches, 4096):
    part = descs[start:start + 4096]
    part[:] = rng.standard_normal((part.shape[0], 1, dim), dtype=np.float32)
    part += _NOISE[None, :, None] * rng.standard_normal(part.shape, dtype=np.float32)
  return types.DescriptorSet(sequences=tuple(f"seq_{i:02d}" for i in range(num_sequences)),
                             offsets=np.concatenate([[0], np.cumsum(counts)]), descs=descs)


def verification_task(rng: np.random.Generator, counts: np.ndarray,
                      n: int) -> types.VerificationTask:
  """Pairs drawn as the official generator draws them (two distinct patches and types)."""
  seq = rng.integers(0, counts.size, n)
  idx1 = rng.integers(0, counts[seq])
  idx2 = (idx1 + rng.integers(1, counts[seq])) % counts[seq]
  t1 = rng.integers(0, 5, n)
  t2 = (t1 + rng.integers(1, 5, n)) % 5
  seq_inter = rng.integers(0, counts.size, n)
  idx_inter = rng.integers(0, counts[seq_inter])

  def pairs(s2, i2):
    return types.PairList(seq1=seq, t1=t1, idx1=idx1, seq2=s2, t2=t2, idx2=i2)
  return types.VerificationTask(positives=pairs(seq, idx1), intra_negatives=pairs(seq, idx2),
                                inter_negatives=pairs(seq_inter, idx_inter))


def retrieval_task(rng: np.random.Generator, offsets: np.ndarray, num_queries: int,
                   num_distractors: int) -> types.RetrievalTask:
  """Distinct random `ref` patches: queries, then distractors."""
  labels = rng.choice(int(offsets[-1]), num_queries + num_distractors, replace=False)
  seq = np.searchsorted(offsets, labels, side="right") - 1
  rows = np.stack([seq, labels - offsets[seq]], axis=1).astype(np.int64)
  return types.RetrievalTask(queries=rows[:num_queries], distractors=rows[num_queries:])


def _cpu_seconds() -> float:
  usage = resource.getrusage(resource.RUSAGE_SELF)
  return usage.ru_utime + usage.ru_stime


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--sequences", type=int, default=40)
  parser.add_argument("--patches", type=int, default=59532)
  parser.add_argument("--dim", type=int, default=128)
  parser.add_argument("--pairs", type=int, default=1_000_000)
  parser.add_argument("--queries", type=int, default=10_000)
  parser.add_argument("--distractors", type=int, default=20_000)
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args()

  rng = np.random.default_rng(args.seed)
  descs = descriptor_set(rng, args.sequences, args.patches, args.dim)
  verif = verification_task(rng, descs.counts(), args.pairs)
  retr = retrieval_task(rng, descs.offsets, args.queries, args.distractors)

  seconds, cpu, results = {}, {}, {}
  for name, run in (
      ("verification", lambda: verification.evaluate_verification(descs, verif)),
      ("matching", lambda: matching.evaluate_matching(descs)),
      ("retrieval", lambda: retrieval.evaluate_retrieval(descs, retr))):
    start, cpu_start = time.perf_counter(), _cpu_seconds()
    results[name] = run()["mAP"]
    seconds[name] = time.perf_counter() - start
    cpu[name] = _cpu_seconds() - cpu_start

  print(json.dumps({
      **{f"{k}_s": round(v, 2) for k, v in seconds.items()},
      "total_s": round(sum(seconds.values()), 2),
      # CPU seconds of all threads: on a shared machine, wall time grows with
      # the others' load while this stays close to the work done.
      "cpu_s": {k: round(v, 2) for k, v in cpu.items()},
      "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
      "device": str(jax.devices()[0].device_kind),
      "mAP": {k: round(v, 4) for k, v in results.items()},
      "patches": args.patches, "sequences": args.sequences, "dim": args.dim,
      "pairs": args.pairs, "queries": args.queries, "distractors": args.distractors,
      "machine": f"{platform.machine()} {jax.local_device_count()} x {jax.default_backend()}",
  }))


if __name__ == "__main__":
  main()
