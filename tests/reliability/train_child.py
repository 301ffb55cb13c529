"""A training run that SIGKILLs itself at a chosen point (run as a subprocess by the tests).

  python -m tests.reliability.train_child WORKDIR OUT.npz [KILL]

trains the small descriptor config of tests/train/test_resume.py on random
patches (4 sequences: 3 train, 1 validation) in WORKDIR, resuming from its
checkpoints, and writes the final parameters to OUT.npz. KILL:
  batch:K    SIGKILL when the training stream hands out its K-th batch
             (counted from this process's start);
  commit:S   SIGKILL inside orbax's commit of step S: the arrays are on disk
             in the temporary folder, which is not yet renamed;
  write:S    SIGKILL while orbax is still writing step S's arrays.
"""

import os
import signal
import sys

import jax
import numpy as np
import orbax.checkpoint as ocp

from nhp_jax.data import patchset, pipelines, training_data
from nhp_jax.train import loop
from tests.train import test_resume


def _data():
  rng = np.random.default_rng(0)
  seqs = {name: (rng.integers(0, 256, (n, 16, 32, 32), dtype=np.uint8),
                 rng.integers(0, 256, (n, 16, 32, 32), dtype=np.uint8))
          for name, n in (("i_one", 7), ("v_two", 5), ("i_three", 9), ("v_four", 6))}
  ps = patchset.from_arrays(seqs)
  cut = int(ps.offsets[3])
  return (patchset.take_labels(ps, np.arange(cut)),
          patchset.take_labels(ps, np.arange(cut, ps.num_labels)))


def _die():
  sys.stdout.flush()
  os.kill(os.getpid(), signal.SIGKILL)


def _kill_at_batch(k: int) -> None:
  real = pipelines.as_numpy

  def dying(ds):
    for i, batch in enumerate(real(ds), start=1):
      if i == k:
        _die()
      yield batch
  pipelines.as_numpy = dying


def _kill_in_save(step: int, stage: str) -> None:
  """Kills in the background save of `step`: before its arrays are written, or at its commit."""
  from orbax.checkpoint._src.path import atomicity  # pylint: disable=g-import-not-at-top
  real_finalize = atomicity.AtomicRenameTemporaryPath.finalize
  real_save = ocp.StandardCheckpointHandler.async_save

  def is_step(path) -> bool:
    return os.path.basename(str(path)).split(".")[0] == str(step)

  async def finalize(self, *args, **kwargs):
    if stage == "commit" and is_step(self.get()):
      _die()
    return await real_finalize(self, *args, **kwargs)

  async def async_save(self, directory, *args, **kwargs):
    futures = await real_save(self, directory, *args, **kwargs)
    if stage == "write" and is_step(os.path.dirname(str(directory))):
      _die()  # the writes are scheduled, not committed
    return futures
  atomicity.AtomicRenameTemporaryPath.finalize = finalize
  ocp.StandardCheckpointHandler.async_save = async_save


def main(workdir: str, out: str, kill: str | None = None) -> None:
  data = _data()
  training_data.hpatches_data = lambda config, data_dir: data
  if kill:
    kind, _, value = kill.partition(":")
    if kind == "batch":
      _kill_at_batch(int(value))
    else:
      _kill_in_save(int(value), kind)
  state = jax.device_get(loop.train_and_evaluate(test_resume._descriptor_config(), workdir))
  leaves = jax.tree.leaves((state.params, state.batch_stats, state.opt_state))
  np.savez(out, step=np.asarray(state.step), *leaves)


if __name__ == "__main__":
  main(*sys.argv[1:])
