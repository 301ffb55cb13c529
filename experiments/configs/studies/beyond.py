"""Beyond the seed (#9): the seed's proposed pipeline vs each addition vs the best combination.

Every row scores noisy test patches through its whole pipeline (denoiser,
then descriptor; a jointly fine-tuned pair is one model from noisy pixels).

  seed proposal     DnCNN + transfer, L2-Net (clean, triplet curriculum, SGD)
  + HardNet         hardest-in-batch loss, L2-normalised, batch 128 (medium)
  + SOS             HardNet + SOSNet's second-order similarity regulariser
  + Adam            the proposal's descriptor trained with Adam, cosine decay
  + full UNet Adam  the 4-level UNet denoiser trained with Adam (the seed's SGD
                    at lr 1e-5 left it behind the shallow one)
  + flip/rot        the proposal's descriptor with flips and 90-degree rotations
  + joint           the proposal's denoiser and descriptor fine-tuned end to
                    end on noisy patches (MAE + triplet loss)
  best              the best combination (see the README's table)

  python -m experiments.study --config=experiments/configs/studies/beyond.py:medium \\
      --workdir=workdirs/beyond
  python -m experiments.study --config=experiments/configs/studies/beyond.py:medium \\
      --workdir=workdirs/beyond_data2 --data_dir=DATA2    # the second generated dataset
"""

from experiments.configs.studies import catalogue


def get_config(scale: str = "medium"):
  c = catalogue.study("beyond", "Beyond the seed: additions to the proposed pipeline", scale)
  row = catalogue.row
  c.rows = [
      row("seed proposal", "l2net_proposed", "dncnn_transfer", "denoised"),
      row("+ HardNet loss", "hardnet", "dncnn_transfer", "denoised"),
      row("+ HardNet + SOS", "hardnet_sos", "dncnn_transfer", "denoised"),
      row("+ Adam (descriptor)", "l2net_proposed_adam", "dncnn_transfer", "denoised"),
      row("+ full UNet, Adam (denoiser)", "l2net_proposed", "unet_adam", "denoised"),
      row("+ flip/rot augmentation", "l2net_proposed_flip_rot", "dncnn_transfer", "denoised"),
      row("+ joint fine-tuning", "joint_proposed", "", "noisy"),
      # Combinations.
      row("HardNet, shallow UNet", "hardnet", "unet_shallow", "denoised"),
      row("HardNet + joint, shallow UNet", "joint_hardnet_shallow", "", "noisy"),
      row("HardNet + joint, DnCNN", "joint_hardnet", "", "noisy"),
  ]
  return c
