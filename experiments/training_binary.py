"""Command line shared by the training binaries: --config, --workdir, --data_dir.

Once the config is parsed, and before JAX's backend starts, `platform.setup`
prepares the backend: on a CPU the XLA host devices the config's batch is
split over (`nhp_jax.host_devices`; `NHP_CPU_DEVICES=N` sets the count,
1 turns the split off; XLA_FLAGS set by the user win); with
`--config.parallel.distributed=True` it joins the multi-process job.
"""

import os

from absl import app, flags
from ml_collections import config_flags

from experiments import cli
from nhp_jax import platform

CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")


def main(default_config: str) -> None:
  """Defines the flags and runs `loop.train_and_evaluate` under absl.

  Args:
    default_config: file name in experiments/configs used when --config is absent.
  """
  config = config_flags.DEFINE_config_file(
      "config", default=os.path.join(CONFIG_DIR, default_config), lock_config=True,
      help_string="experiment config file[:smoke]; override fields with --config.a.b=value")
  workdir = flags.DEFINE_string("workdir", None, "folder for checkpoints, metrics.jsonl, "
                                "learning curves and TensorBoard; rerun to resume",
                                required=True)
  data_dir = flags.DEFINE_string("data_dir", None, "N-HPatches or HPatches root; absent: "
                                 "the embedded dataset (generated on first use)")

  def run(argv):
    if len(argv) > 1:
      raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    platform.setup(batch_sizes=[config.value.training.batch_size],
                   distributed=config.value.parallel.distributed)
    from nhp_jax.train import loop
    # Bad config, data or checkpoint: one line, status 2; NaN: one line, status 1.
    loop.train_and_evaluate(config.value, workdir.value, data_dir.value)

  cli.run(run)
