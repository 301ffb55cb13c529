"""Fine-tunes a trained denoiser and descriptor end to end on noisy patches (MAE + descriptor loss).

  python -m experiments.finetune_joint --config=experiments/configs/joint.py \
      --config.finetune.denoiser_workdir=DENOISER_RUN \
      --config.finetune.descriptor_workdir=DESCRIPTOR_RUN --workdir=workdirs/joint
"""

from experiments import training_binary

if __name__ == "__main__":
  training_binary.main("joint.py")
