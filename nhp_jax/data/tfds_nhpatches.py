"""TFDS builder `nhpatches`: N-HPatches, the public HPatches release, or the embedded synthetic set.

One example = one label (a physical point): its 16 clean views and their 16
noisy copies, in `layout.IMAGE_TYPES` order. Splits `train` and `test` are
those of HPatches split `a` (a config's `hpatches_split` picks another).

    import nhp_jax.data.tfds_nhpatches  # registers the builder
    ds = tfds.load("nhpatches/embedded_smoke", split="train")
    ds = tfds.load("nhpatches/nhpatches", split="test", download_and_prepare_kwargs={
        "download_config": tfds.download.DownloadConfig(manual_dir="/path/to/N-HPatches")})

Pixels come from `reader.py` (the same reader the rest of nhp_jax uses).
"""

import dataclasses
import os

from etils import epath
import numpy as np
import tensorflow as tf

tf.config.set_visible_devices([], "GPU")

import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

from nhp_jax.data import embedded
from nhp_jax.data import generator
from nhp_jax.data import layout
from nhp_jax.data import reader
from nhp_jax.data import splits as splits_lib

_VIEW_SHAPE = (layout.NUM_IMAGES, layout.PATCH_SIZE, layout.PATCH_SIZE, 1)
# Raw bytes: ~10x faster to write than the default one-int64-per-pixel encoding.
_RAW = tfds.features.Encoding.BYTES


@dataclasses.dataclass(eq=False)
class NhpatchesConfig(tfds.core.BuilderConfig):
  """Which data a config reads.

  Attributes:
    source: "nhpatches" (manual dir, N-HPatches layout), "hpatches" (manual
      dir, public 65x65 release, noise synthesised) or "embedded".
    size: generator size of the embedded set (generator.SIZES).
    hpatches_split: the HPatches split whose train/test lists become the
      TFDS splits.
  """
  source: str = "embedded"
  size: str = "medium"
  hpatches_split: str = "a"


def _embedded_config(size: str, name: str) -> NhpatchesConfig:
  n, p = generator.SIZES[size]
  return NhpatchesConfig(name=name, source="embedded", size=size,
                         description=f"SYNTHETIC HPatches-like patches generated from photos "
                                     f"bundled with scikit-image ({size}: {n} sequences x up to "
                                     f"{p} labels).")


class Nhpatches(tfds.core.GeneratorBasedBuilder):
  """N-HPatches: 32x32 grey patches in 16 views (ref, e1..e5, h1..h5, t1..t5), clean and noisy."""

  # The inherited lookup of this file's path needs the `importlib_resources`
  # backport on Python >= 3.9 (a tensorflow-datasets 4.9 quirk); say it directly.
  code_path = epath.Path(__file__)
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First release."}
  BUILDER_CONFIGS = [
      _embedded_config("medium", "embedded"),
      *[_embedded_config(s, f"embedded_{s}") for s in generator.SIZES if s != "medium"],
      NhpatchesConfig(name="nhpatches", source="nhpatches",
                      description="N-HPatches (noisy HPatches) from the manual dir."),
      NhpatchesConfig(name="hpatches", source="hpatches",
                      description="The public HPatches release from the manual dir, 65x65 "
                                  "patches area-resized to 32x32, noisy copies synthesised."),
  ]
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Config `nhpatches`: N-HPatches (noisy HPatches, 32x32 patches) as used by the
  Imperial College deep-learning coursework; it is distributed with the
  course's baseline repository (github.com/MatchLab-Imperial/keras_triplet_descriptor,
  see its README for the download link). Unpack it so that the manual dir
  (or its subfolder `nhpatches/`) holds `hpatches/<seq>/<tp>.png` and
  `<tp>_noise.png`. An optional `splits.json` beside `hpatches/` replaces the
  official HPatches splits.

  Config `hpatches`: the public HPatches release (65x65 patches), from
  github.com/hpatches/hpatches-dataset: download `hpatches-release.tar.gz`
  (linked from its README, about 4 GB) and untar it in the manual dir, giving
  `hpatches-release/<seq>/<tp>.png`.

  Configs `embedded*` need nothing: they generate a synthetic set (or read
  one written by `python -m experiments.make_dataset` if the manual dir holds
  it).
  """

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            "clean": tfds.features.Tensor(shape=_VIEW_SHAPE, dtype=np.uint8, encoding=_RAW),
            "noisy": tfds.features.Tensor(shape=_VIEW_SHAPE, dtype=np.uint8, encoding=_RAW),
            "sequence": tfds.features.Text(),
            "label": np.int64,  # label index in the split, in load order
            "row": np.int64,    # patch row in the sequence's images
        }),
        homepage="https://github.com/hpatches/hpatches-dataset",
    )

  def _data_root(self, dl_manager: tfds.download.DownloadManager) -> str:
    config = self.builder_config
    if config.source == "embedded":
      manual = dl_manager._manual_dir  # pylint: disable=protected-access
      if manual is not None and generator.is_complete(os.fspath(manual)):
        return os.fspath(manual)
      return embedded.ensure_embedded(config.size)
    manual = os.fspath(dl_manager.manual_dir)  # raises with the instructions if missing
    sub = os.path.join(manual, "nhpatches")
    return sub if config.source == "nhpatches" and os.path.isdir(sub) else manual

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    root = self._data_root(dl_manager)
    source = reader.open_source(root, self.builder_config.source
                                if self.builder_config.source != "embedded" else "nhpatches")
    all_splits = splits_lib.splits_for_root(root)
    return {subset: self._generate_examples(source, splits_lib.split_sequences(
        self.builder_config.hpatches_split, subset, all_splits)) for subset in splits_lib.SUBSETS}

  def _generate_examples(self, source: reader.Source, sequences: list[str]):
    offsets = reader.count_labels(source, sequences)  # every header checked before decoding
    for s, name in enumerate(sequences):
      clean, noisy = reader.read_sequence(source.sequence_dir(name), source.layout,
                                          source.noise_config, source.noise_seed)
      for row in range(clean.shape[0]):
        yield f"{name}/{row}", {"clean": clean[row, ..., None], "noisy": noisy[row, ..., None],
                                "sequence": name, "label": int(offsets[s]) + row, "row": row}
