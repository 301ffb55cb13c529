r"""Generates the embedded (synthetic) HPatches-like dataset, and/or draws sample patches.

    python -m experiments.make_dataset --size=medium          # into the embedded location
    python -m experiments.make_dataset --size=small --out_dir=/tmp/nhp_small \
        --noise_sigma_max=40 --sample_png=/tmp/nhp_small.png
    python -m experiments.make_dataset --sample_only --out_dir=DATA --sample_png=x.png

Prints one JSON line: what was written (sequences, labels, patches, bytes,
seconds). With non-default generator settings --out_dir is required, so the
embedded location only ever holds the default dataset of a size and seed.
"""

import dataclasses
import json

from absl import app
from absl import flags
from absl import logging

from experiments import cli
from nhp_jax.data import embedded
from nhp_jax.data import generator
from nhp_jax.data import noise
from nhp_jax.data import preview

_OUT_DIR = flags.DEFINE_string("out_dir", None, "dataset folder; default: the embedded "
                               "location of --size/--seed")
_SIZE = flags.DEFINE_enum("size", "medium", list(generator.SIZES), "named size")
_SEED = flags.DEFINE_integer("seed", 0, "dataset seed")
_NUM_SEQUENCES = flags.DEFINE_integer("num_sequences", None, "override the size's sequence count")
_PATCHES = flags.DEFINE_integer("patches_per_sequence", None,
                                "override the size's labels per sequence")
_SIGMA_MIN = flags.DEFINE_float("noise_sigma_min", noise.DEFAULT.sigma_min,
                                "lowest per-sequence read-noise std (grey levels)")
_SIGMA_MAX = flags.DEFINE_float("noise_sigma_max", noise.DEFAULT.sigma_max,
                                "highest per-sequence read-noise std (grey levels)")
_GAIN = flags.DEFINE_float("noise_signal_gain", noise.DEFAULT.signal_gain,
                           "shot-noise variance per grey level")
_BLUR = flags.DEFINE_float("noise_blur_sigma", noise.DEFAULT.blur_sigma,
                           "Gaussian blur (px) before the noise; 0 = none")
_WORKERS = flags.DEFINE_integer("workers", None, "generator processes (default: CPU count)")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "replace an existing --out_dir")
_SAMPLE_PNG = flags.DEFINE_string("sample_png", None, "also draw sample patches to this PNG")
_SAMPLE_ONLY = flags.DEFINE_bool("sample_only", False, "only draw --sample_png from the "
                                 "existing dataset at --out_dir (any N-HPatches/HPatches root)")
_SAMPLE_ROWS = flags.DEFINE_integer("sample_rows", 8, "labels drawn in the sample picture")


def _config() -> generator.GeneratorConfig:
  """The --size/--seed config with the flags' overrides."""
  base = generator.size_config(_SIZE.value, _SEED.value)
  fields = {f.name: getattr(base, f.name) for f in dataclasses.fields(base)}
  fields["noise"] = noise.NoiseConfig(_SIGMA_MIN.value, _SIGMA_MAX.value, _GAIN.value, _BLUR.value)
  if _NUM_SEQUENCES.value is not None:
    fields["num_sequences"] = _NUM_SEQUENCES.value
  if _PATCHES.value is not None:
    fields["patches_per_sequence"] = _PATCHES.value
  return generator.GeneratorConfig(**fields)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  out_dir = _OUT_DIR.value
  if not _SAMPLE_ONLY.value:
    config = _config()
    if out_dir is None:
      if config.to_json() != generator.size_config(_SIZE.value, _SEED.value).to_json():
        raise app.UsageError("non-default generator settings need an explicit --out_dir")
      out_dir = embedded.embedded_data_dir(_SIZE.value, _SEED.value)
    summary = generator.write_dataset(out_dir, config, workers=_WORKERS.value,
                                      overwrite=_OVERWRITE.value, log=logging.info)
    print(json.dumps(summary), flush=True)
  elif out_dir is None:
    raise app.UsageError("--sample_only needs --out_dir")
  if _SAMPLE_PNG.value:
    labels = preview.save_sample(out_dir, _SAMPLE_PNG.value, _SAMPLE_ROWS.value, _SEED.value)
    print(json.dumps({"sample_png": _SAMPLE_PNG.value, "labels": labels.tolist()}), flush=True)


if __name__ == "__main__":
  cli.run(main)
