"""The main job: dataset -> denoiser -> descriptor (-> joint fine-tuning) -> benchmarks -> model.

Runs a pipeline end to end: builds (or reuses) the embedded synthetic
dataset unless --data_dir is given, trains each stage of the pipeline
config, scores on the test split and exports the pipeline's model.

Scales (`--scale`, `experiments/configs/pipelines.py`):
  main      (default) a few hundred steps per stage, minutes on a laptop CPU
            (`pipelines.DEFAULTS`), on the embedded `small` set, 100,000
            generated pairs per verification file;
  full      every stage config's own settings (the seed's epochs, every
            train label; a GPU/TPU job, meant for --data_dir=N-HPatches),
            the official 1,000,000 pairs. The scale flags below override
            either scale field by field.

Pipelines (`--pipeline`, stage settings in `experiments/configs/pipelines.py`):
  fast      (default, `experiments/configs/fast.py`): the shallow UNet, L2-Net
            with HardNet's loss, then both fine-tuned end to end on noisy
            patches; the headline numbers are the fine-tuned pair's, from
            noisy patches (column `joint`). The default by the seeds study's
            evidence (README, "The default pipeline by evidence");
  dncnn     (`experiments/configs/dncnn.py`): as fast with DnCNN pretrained
            on AWGN + transfer in place of the UNet (a tie with fast, at
            three times its cost; `best` until the seeds study);
  baseline  (`experiments/configs/pipeline_baseline.py`): the seed's shallow
            UNet and L2-Net with random triplets; headline: denoised input.
Either way the separately trained descriptor is also scored with noisy,
denoised and clean inputs (the seed's Fig. 4 table). Writes, into --workdir:
results.json (headline: the pipeline's own column), results.md (the table),
results.png (a bar chart of it) and `model`, the headline model as one
portable file (`nhp_jax.load("<workdir>/model")`; the fine-tuned pair for
fast and dncnn, the separately trained pair for baseline). Every stage
resumes: rerun the same command after an interruption and finished stages
are skipped.

  bash run.sh main                                   # what the README's first command runs
  python -m experiments.main --workdir=workdirs/main --size=small
  python -m experiments.main --pipeline=baseline --workdir=workdirs/main_baseline
  python -m experiments.main --data_dir=DATA --denoiser_epochs=50 --descriptor_epochs=20
  python -m experiments.main --workdir=workdirs/main_bf16 --dtype=bfloat16 --seed=1
  python -m experiments.main --scale=full --data_dir=N-HPatches --workdir=workdirs/full \
      --tasks_dir=hpatches-benchmark/tasks

Numbers on the embedded dataset are synthetic-data results, not N-HPatches ones.
"""

import os

from absl import app, flags, logging

from experiments import cli
from experiments.configs import pipelines
from nhp_jax import platform
from nhp_jax.data import generator
from nhp_jax.evaluation import baselines
from nhp_jax.evaluation import task_files
from nhp_jax.workflows import main_job
from nhp_jax.workflows import stages

_PIPELINE = flags.DEFINE_enum("pipeline", pipelines.DEFAULT, list(pipelines.PIPELINES),
                              "which pipeline config")
_WORKDIR = flags.DEFINE_string("workdir", "workdirs/main", "run folder: one subfolder per "
                               "stage (pretrain/, denoiser/, descriptor/, joint/), "
                               "results.json, results.md, results.png and the exported model")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "N-HPatches or HPatches root; absent: "
                                "the embedded synthetic dataset of --size")
_SIZE = flags.DEFINE_enum("size", None, list(generator.SIZES),
                          "embedded dataset size when --data_dir is absent; default: small "
                          "at --scale=main, the configs' own (medium) at --scale=full")
_SCALE = flags.DEFINE_enum("scale", "main", ["main", "full"],
                           "main: each stage shortened to minutes on a CPU; full: every stage "
                           "config's own settings (experiments/configs/pipelines.py)")
_TASKS_DIR = flags.DEFINE_string("tasks_dir", None, "folder with the official task CSVs "
                                 "(and/or splits.json) to score with; what it lacks is "
                                 "generated as the official generators do")
_TRAIN_LABELS = flags.DEFINE_integer(
    "train_labels", None, "train labels (x16 patches) the denoiser sees per epoch; 0: all")
_DENOISER_EPOCHS = flags.DEFINE_integer("denoiser_epochs", None, "denoiser epochs")
_DESCRIPTOR_EXAMPLES = flags.DEFINE_integer(
    "descriptor_examples_per_epoch", None, "descriptor triplets (or anchor-positive pairs, "
    "for HardNet's loss) per epoch")
flags.DEFINE_alias("triplets_per_epoch", "descriptor_examples_per_epoch")   # its name until #21
_DESCRIPTOR_EPOCHS = flags.DEFINE_integer("descriptor_epochs", None, "descriptor epochs")
_JOINT_EXAMPLES = flags.DEFINE_integer("joint_examples_per_epoch", None, "joint fine-tuning "
                                       "triplets or pairs per epoch")
_JOINT_EPOCHS = flags.DEFINE_integer("joint_epochs", None, "joint fine-tuning epochs")
_PRETRAIN_CROPS = flags.DEFINE_integer("pretrain_crops", None, "DnCNN pretraining: AWGN photo "
                                       "crops (x16 noisy views) per epoch")
_PRETRAIN_EPOCHS = flags.DEFINE_integer("pretrain_epochs", None, "DnCNN pretraining epochs")
_DTYPE = flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16"],
                           "compute dtype of every stage (parameters, optimiser state and "
                           "losses stay float32)")
_SEED = flags.DEFINE_integer("seed", 0, "seed of every stage (initialisation, sampling, "
                             "dropout)")
_N_PAIRS = flags.DEFINE_integer("n_pairs", None, "pairs per generated verification file; "
                                "default: 100,000 at --scale=main, the official 1,000,000 at "
                                "--scale=full")
_CLASSICAL = flags.DEFINE_string("classical", "raw,sift,rootsift", "classical descriptors "
                                 "scored beside the learned ones on the same noisy and clean "
                                 "test patches (nhp_jax.models.classical); empty: none")
MAIN_N_PAIRS = 100_000


def stage_configs():
  """The pipeline's stage configs from the flags, and the stages it has, in order."""
  # Scale flags left unset take the scale's value (pipelines.DEFAULTS, or the configs' own).
  c = pipelines.pipeline_config(
      _PIPELINE.value, _SIZE.value, _SCALE.value, train_labels=_TRAIN_LABELS.value,
      denoiser_epochs=_DENOISER_EPOCHS.value,
      descriptor_examples_per_epoch=_DESCRIPTOR_EXAMPLES.value,
      descriptor_epochs=_DESCRIPTOR_EPOCHS.value,
      joint_examples_per_epoch=_JOINT_EXAMPLES.value, joint_epochs=_JOINT_EPOCHS.value,
      pretrain_crops=_PRETRAIN_CROPS.value, pretrain_epochs=_PRETRAIN_EPOCHS.value)
  names = stages.stages_of(c)
  for stage in names:
    c[stage].dtype, c[stage].seed = _DTYPE.value, _SEED.value
  return c, names


def n_pairs() -> int:
  """Pairs per generated verification file: the flag, else the scale's default."""
  if _N_PAIRS.value is not None:
    return _N_PAIRS.value
  return MAIN_N_PAIRS if _SCALE.value == "main" else task_files.OFFICIAL_N_PAIRS


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if _TASKS_DIR.value is not None and not os.path.isdir(_TASKS_DIR.value):
    # Found now, not after the training it would be scored at the end of.
    cli.fail(f"--tasks_dir={_TASKS_DIR.value}: expected a folder of task CSVs, found "
             f"{'a file' if os.path.exists(_TASKS_DIR.value) else 'nothing'}")
  classical_names = baselines.parse_names(_CLASSICAL.value)   # checked before any training
  c, names = stage_configs()
  # Backend set-up for the stages' batches, before anything starts JAX's backend.
  platform.setup(batch_sizes=[c[s].training.batch_size for s in names],
                 distributed=any(c[s].parallel.distributed for s in names))
  logging.info("pipeline %s at scale %s: %s", c.name, _SCALE.value, pipelines.settings(c))
  result = main_job.run(c, _WORKDIR.value, data_dir=_DATA_DIR.value, tasks_dir=_TASKS_DIR.value,
                        n_pairs=n_pairs(), classical_names=classical_names)
  if result is not None:   # a multi-process job scores and writes on process 0
    print(result.table, end="", flush=True)


if __name__ == "__main__":
  cli.run(main)
