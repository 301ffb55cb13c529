"""The default pipeline by evidence: each main-job pipeline, several seeds, two generated datasets.

Each (dataset, pipeline, seed) trains as `experiments.main` does at its
main scale and scores its headline on every test label (the fine-tuned
pair from noisy patches for fast and dncnn, denoised patches for baseline).
The datasets: the embedded medium set, and the one the beyond study's
second run uses (seed 1, read noise sigma 25-45), generated under the
study root. `nhp_jax.workflows.seeds` writes the table, the plot and the
default the evidence picks.

  python -m experiments.study --config=experiments/configs/studies/seeds.py:main \\
      --workdir=workdirs/seeds
  python -m experiments.study --config=experiments/configs/studies/seeds.py:smoke \\
      --workdir=/tmp/seeds_smoke                     # seconds per run (tests)
"""

import ml_collections

from experiments.configs import pipelines

SCALES = ("smoke", "main")
PIPELINES = ("fast", "dncnn", "baseline")
SEEDS = (0, 1, 2)
# Smoke: every stage a few steps (seconds per run), for the tests.
SMOKE = {"train_labels": 20, "denoiser_epochs": 1, "descriptor_examples_per_epoch": 256,
         "descriptor_epochs": 1, "joint_examples_per_epoch": 128, "joint_epochs": 1}
# The beyond study's second dataset: another generator seed and more read noise.
SECOND = {"seed": 1, "noise_sigma_min": 25.0, "noise_sigma_max": 45.0}


def get_config(scale: str = "main"):
  if scale not in SCALES:
    raise ValueError(f"seeds study scale must be one of {', '.join(SCALES)}, got {scale!r}")
  size = "smoke" if scale == "smoke" else "medium"
  c = ml_collections.ConfigDict()
  c.name = "seeds"
  c.title = "Main-job pipelines over seeds and datasets"
  c.scale = scale
  c.kind = "seeds"
  c.seeds = list(SEEDS[:2] if scale == "smoke" else SEEDS)
  c.n_pairs = 2_000 if scale == "smoke" else 100_000
  c.datasets = [{"name": size, "embedded": size},
                {"name": f"{size}-seed1-sigma25-45", "size": size, **SECOND}]
  names = ("fast", "baseline") if scale == "smoke" else PIPELINES
  c.pipelines = ml_collections.ConfigDict(
      {p: pipelines.pipeline_config(p, size, **(SMOKE if scale == "smoke" else {}))
       for p in names})
  return c
