"""Trains a denoiser (noisy -> clean patches, MAE): shallow or full UNet, DnCNN, DnCNN + transfer.

  python -m experiments.train_denoiser --config=experiments/configs/denoiser.py \
      --workdir=workdirs/unet_shallow [--data_dir=DATA] [--config.training.num_epochs=10]

Rerunning the same command resumes from the workdir's last checkpoint.
"""

from experiments import training_binary

if __name__ == "__main__":
  training_binary.main("denoiser.py")
