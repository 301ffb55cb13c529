"""Names and indices of the HPatches layout, shared by every module.

A sequence holds 16 images of the same N physical patches: `ref`, then the
easy, hard and tough jittered copies of 5 target images. Row i of every image
is the same physical point: its label.
"""

PATCH_SIZE = 32          # N-HPatches / network input side, pixels.
HPATCHES_PATCH_SIZE = 65  # public HPatches release side, pixels.
LEVELS = ("e", "h", "t")  # easy, hard, tough jitter.
IMAGE_TYPES = ("ref",) + tuple(f"{lv}{k}" for lv in LEVELS for k in range(1, 6))
NUM_IMAGES = len(IMAGE_TYPES)  # 16
TOUGH_IMAGES = tuple(IMAGE_TYPES.index(f"t{k}") for k in range(1, 6))  # (11..15)
NOISE_SUFFIX = "_noise"   # `<tp>_noise.png` holds the noisy copy of `<tp>.png`.
SPLIT_NAMES = ("a", "b", "c", "full", "illum", "view")


def image_index(level: str, k: int) -> int:
  """Index in IMAGE_TYPES of image `<level><k>` (k in 1..5); level '' or k 0 is `ref`."""
  if k == 0:
    return 0
  if level not in LEVELS or not 1 <= k <= 5:
    raise ValueError(f"image type must be ref or one of e/h/t 1..5, got {level!r}{k}")
  return IMAGE_TYPES.index(f"{level}{k}")
