"""L2-Net descriptor with the triplet loss: the seed's baseline (section 2.2, Fig. 3).

Triplet loss max(0, d(a,p) - d(a,n) + 1), d = squared L2 / 128; SGD lr 0.1;
batch 50; 100,000 triplets per epoch; 50 epochs; trained on clean patches
(the seed's 4.2.1 finding). Batch norm sees anchor, positive and negative as
three batches, as the Keras baseline (`descriptor.bn_passes=3`; 1 is one
faster pass over all three).

Options (as `--config.<field>=value`):
  input.source=noisy | denoised (then input.denoiser_workdir=<train_denoiser workdir>)
  descriptor.schedule=tough_positive | far_negative | curriculum (tough_positive
    10 epochs, regular 35, far_negative 5: the seed's proposal, Figs. 9-11)
    | "tough_positive:10,regular:35,far_negative:5"
  descriptor.far_gap=10000 (labels between anchor and far negative)
  descriptor.loss=hardest_in_batch (HardNet; see hardnet.py), descriptor.sos_weight=1
    (SOSNet regulariser, hardest_in_batch only), descriptor.augment=flip_rot

  python -m experiments.train_descriptor --config=experiments/configs/descriptor.py \
      --workdir=workdirs/l2net_clean [--data_dir=DATA]
  python -m experiments.train_descriptor --config=experiments/configs/descriptor.py:smoke \
      --workdir=/tmp/descriptor_smoke      # seconds, tiny embedded dataset

Result: not measured yet (fill in after a real run).
"""

from experiments.configs import common


def get_config(arg: str = ""):
  common.check_arg(arg)
  c = common.base("descriptor", "l2net", dropout_rate=0.3, l2_normalize=False, final_bn=False,
                  input_scale=1.0)
  c.data = common.hpatches_data()
  c.optimizer.learning_rate = 0.1
  c.descriptor = {
      "margin": 1.0,
      "bn_passes": 3,
      "examples_per_epoch": 100_000,
      "schedule": "regular",
      "far_gap": 10_000,
      "distinct_anchors": True,   # anchor labels distinct within a batch (Keras baseline)
      "val_triplets": 2000,       # fixed "regular" validation triplets
      # "triplet" (the seed's) or "hardest_in_batch" (HardNet: anchor-positive
      # batches of distinct labels; examples_per_epoch then counts pairs).
      "loss": "triplet",
      "sos_weight": 0.0,          # SOSNet regulariser weight (hardest_in_batch); 0: off
      "sos_k": 8,                 # its nearest neighbours per set
      "augment": "none",          # "none" or "flip_rot" (flips, 90-degree rotations)
  }
  c.input = {
      "source": "clean",          # "clean", "noisy" or "denoised"
      "denoiser_workdir": "",     # for "denoised": a train_denoiser workdir
      "denoiser_checkpoint": "best",
      "denoise_batch_size": 1024,
  }
  if arg == "smoke":
    common.smoke(c)
    c.descriptor.examples_per_epoch = 300   # 6 steps per epoch
    c.descriptor.val_triplets = 100
    c.descriptor.far_gap = 20
  return c
