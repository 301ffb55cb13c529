"""Pretrains a DnCNN on natural photos with synthetic Gaussian noise, for DnCNN + transfer.

  python -m experiments.pretrain_dncnn --config=experiments/configs/dncnn_pretrain.py \
      --workdir=workdirs/dncnn_awgn

Rerunning the same command resumes from the workdir's last checkpoint.
"""

from experiments import training_binary

if __name__ == "__main__":
  training_binary.main("dncnn_pretrain.py")
