"""DnCNN + transfer through the loop: pretrain on AWGN, graft, train the head only."""

import jax
import numpy as np
import pytest

from experiments.configs import dncnn_pretrain, dncnn_transfer
from nhp_jax import errors
from nhp_jax.data import patchset, training_data
from nhp_jax.train import checkpointing, loop


def test_pretrain_then_transfer_keeps_the_pretrained_part(tmp_path, monkeypatch, random_patchset):
  pre = dncnn_pretrain.get_config("smoke")
  pre.awgn.train_crops, pre.awgn.val_crops = 4, 2
  pre.training.batch_size, pre.training.num_epochs = 16, 1
  pre_dir = str(tmp_path / "dncnn")
  loop.train_and_evaluate(pre, pre_dir)
  pretrained, _, _ = checkpointing.load_variables(pre_dir, "best")

  cut = int(random_patchset.offsets[3])
  split = (patchset.take_labels(random_patchset, np.arange(cut)),
           patchset.take_labels(random_patchset, np.arange(cut, random_patchset.num_labels)))
  monkeypatch.setattr(training_data, "hpatches_data", lambda config, data_dir: split)
  config = dncnn_transfer.get_config("smoke")
  config.transfer.pretrained_workdir = pre_dir
  config.data.max_train_labels = 0
  config.training.batch_size, config.training.num_epochs = 16, 1
  state = jax.device_get(loop.train_and_evaluate(config, str(tmp_path / "transfer")))

  for col, tree in (("params", state.params), ("batch_stats", state.batch_stats)):
    jax.tree.map(np.testing.assert_array_equal, tree["pretrained"], pretrained[col])

  wrong = dncnn_transfer.get_config("smoke")
  wrong.transfer.pretrained_workdir = pre_dir
  wrong.data.max_train_labels = 0
  wrong.training.batch_size = 16
  wrong.model.kwargs.features = 8
  with pytest.raises(errors.CheckpointError, match="do not fit"):
    loop.train_and_evaluate(wrong, str(tmp_path / "wrong"))
