"""One process of a training job (run as a subprocess by tests/train/test_multiprocess.py).

  python -m tests.train.multiprocess_child WORKDIR OUT.npz

Joins the job its environment describes (JAX_COORDINATOR_ADDRESS,
NHP_NUM_PROCESSES, NHP_PROCESS_ID; none of them: a one-process job) through
`platform.setup`, as the training binaries do, trains the small descriptor
config of tests/train/test_resume.py with HardNet's loss on random patches
in WORKDIR (shared by the job's processes), and writes the final parameters
and batch statistics to OUT.npz (process 0 only).
"""

import sys

from nhp_jax import platform


def main(workdir: str, out: str) -> None:
  platform.setup(batch_sizes=[8])
  import jax  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel

  from nhp_jax.data import training_data  # pylint: disable=import-outside-toplevel
  from nhp_jax.train import loop  # pylint: disable=import-outside-toplevel
  from tests.reliability import train_child  # pylint: disable=import-outside-toplevel
  from tests.train import test_resume  # pylint: disable=import-outside-toplevel

  data = train_child._data()  # pylint: disable=protected-access
  training_data.hpatches_data = lambda config, data_dir: data
  config = test_resume._descriptor_config()  # pylint: disable=protected-access
  config.descriptor.loss = "hardest_in_batch"
  config.descriptor.schedule = "regular"
  config.descriptor.bn_passes = 2
  config.training.num_epochs = 1
  state = loop.train_and_evaluate(config, workdir)
  print(f"process {jax.process_index()} of {jax.process_count()}", flush=True)
  params = jax.tree.map(np.asarray, jax.device_get((state.params, state.batch_stats)))
  if platform.is_writer():
    flat = jax.tree_util.tree_flatten_with_path(params)[0]
    np.savez(out, step=np.asarray(jax.device_get(state.step)),
             **{jax.tree_util.keystr(k): v for k, v in flat})


if __name__ == "__main__":
  main(*sys.argv[1:])
