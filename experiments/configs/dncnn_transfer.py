"""DnCNN + transfer: the seed's proposed denoiser (section 4.1.2, Figs. 6 and 15).

A frozen DnCNN-17 pretrained on AWGN (run `pretrain_dncnn` first) followed
by a trainable DnCNN of depth 5, trained with MAE on N-HPatches pairs for 30
epochs (the seed used 15,000 patches: `--config.data.max_train_labels=938`).
The frozen part is masked in the optimiser and runs in inference mode.
Adam lr 1e-3 (the seed does not give the head's optimiser); batch 50.

  python -m experiments.pretrain_dncnn --config=experiments/configs/dncnn_pretrain.py \
      --workdir=workdirs/dncnn_awgn
  python -m experiments.train_denoiser --config=experiments/configs/dncnn_transfer.py \
      --config.transfer.pretrained_workdir=workdirs/dncnn_awgn --workdir=workdirs/dncnn_transfer
Smoke (seconds): the same two commands with `:smoke` after each config path.

Result: not measured yet (fill in after a real run).
"""

from experiments.configs import denoiser, dncnn_pretrain


def get_config(arg: str = ""):
  c = denoiser.get_config(arg)
  c.model.name = "dncnn_transfer"
  c.model.kwargs = {"pretrained_depth": 17, "head_depth": 5, "features": 64, "input_scale": 1.0}
  c.optimizer.name = "adam"
  c.optimizer.learning_rate = 1e-3
  c.optimizer.momentum = 0.0
  c.optimizer.nesterov = False
  c.optimizer.frozen = ("pretrained",)
  c.training.num_epochs = 30
  if arg == "smoke":
    c.model.kwargs.pretrained_depth = dncnn_pretrain.SMOKE_DEPTH
    c.model.kwargs.head_depth = 3
    c.model.kwargs.features = dncnn_pretrain.SMOKE_FEATURES
    c.training.num_epochs = 2
  return c
