"""Trains the L2-Net descriptor with the triplet loss (clean, noisy or denoised inputs).

  python -m experiments.train_descriptor --config=experiments/configs/descriptor.py \
      --workdir=workdirs/l2net [--data_dir=DATA] [--config.descriptor.schedule=curriculum]

Rerunning the same command resumes from the workdir's last checkpoint.
"""

from experiments import training_binary

if __name__ == "__main__":
  training_binary.main("descriptor.py")
