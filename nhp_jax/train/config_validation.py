"""Checks an experiment config before any work starts.

Every field of every training recipe is declared in `SCHEMAS` with its type and range.
`validate` rejects unknown and missing fields, wrong types, out-of-range
values and inconsistent combinations, with a ConfigError naming the field,
what was expected and what was found.
"""

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

import ml_collections

from nhp_jax import errors
from nhp_jax import inference
from nhp_jax.data import augment, generator, triplets
from nhp_jax.models import MODELS, get_model
from nhp_jax.train import steps

Check = Callable[[str, Any], None]


def _fail(field: str, expected: str, value: Any) -> None:
  raise errors.ConfigError(f"config.{field}: expected {expected}, found {value!r}")


def _int(lo: int | None = None, hi: int | None = None) -> Check:
  def check(field, value):
    if isinstance(value, bool) or not isinstance(value, int):
      _fail(field, "an int", value)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
      _fail(field, f"an int in [{lo if lo is not None else '-inf'}, "
                   f"{hi if hi is not None else 'inf'}]", value)
  return check


def _float(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
           hi_open: bool = False) -> Check:
  def check(field, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
      _fail(field, "a number", value)
    below = lo is not None and (value <= lo if lo_open else value < lo)
    above = hi is not None and (value >= hi if hi_open else value > hi)
    if below or above or not math.isfinite(value):
      _fail(field, f"a number in {'(' if lo_open else '['}{lo if lo is not None else '-inf'}, "
                   f"{hi if hi is not None else 'inf'}{')' if hi_open else ']'}", value)
  return check


def _bool() -> Check:
  def check(field, value):
    if not isinstance(value, bool):
      _fail(field, "True or False", value)
  return check


def _str(choices: tuple[str, ...] | None = None) -> Check:
  def check(field, value):
    if not isinstance(value, str):
      _fail(field, "a string", value)
    if choices is not None and value not in choices:
      _fail(field, f"one of {', '.join(choices)}", value)
  return check


def _names() -> Check:
  def check(field, value):
    if not isinstance(value, (tuple, list)) or not all(isinstance(v, str) for v in value):
      _fail(field, "a tuple of strings", value)
  return check


def _mapping() -> Check:
  def check(field, value):
    if not isinstance(value, Mapping):
      _fail(field, "a dict", value)
  return check


def _split_name() -> Check:
  def check(field, value):
    # Split names also name task files: keep them to one safe path component.
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", value) or value in (
        ".", ".."):
      _fail(field, "a split name of letters, digits, '_', '-' or '.' (e.g. 'a')", value)
  return check


def _checkpoint_ref() -> Check:
  def check(field, value):
    if not (isinstance(value, str) and (value in ("best", "latest") or value.isdigit())):
      _fail(field, '"best", "latest" or a step number', value)
  return check


RECIPE_MODELS = {
    "denoiser": ("unet_shallow", "unet", "dncnn", "dncnn_transfer"),
    "descriptor": ("l2net",),
    "dncnn_pretrain": ("dncnn",),
    "joint": ("denoise_describe",),
}
VALIDATION_SOURCES = ("heldout", "test")

_COMMON = {
    "recipe": _str(tuple(RECIPE_MODELS)),
    "seed": _int(0, 2**31 - 1),
    "dtype": _str(("float32", "bfloat16")),
    "model": {"name": _str(tuple(MODELS)), "kwargs": _mapping()},
    "optimizer": {
        "name": _str(("sgd", "adam")),
        "learning_rate": _float(0.0, lo_open=True),
        "momentum": _float(0.0, 1.0, hi_open=True),
        "nesterov": _bool(),
        "schedule": _str(("constant", "cosine", "linear")),
        "warmup_steps": _int(0),
        "end_factor": _float(0.0, 1.0),
        "frozen": _names(),
    },
    "training": {
        "batch_size": _int(1),
        "num_epochs": _int(1),
        "log_every": _int(1),
        "checkpoint_every": _int(1),
        "keep_checkpoints": _int(1),
        "eval_batch_size": _int(1),
    },
    "parallel": {"num_devices": _int(0), "distributed": _bool()},
}
_HPATCHES_DATA = {
    "data": {
        "split": _split_name(),
        "embedded_size": _str(tuple(generator.SIZES)),
        "embedded_seed": _int(0),
        "max_train_labels": _int(0),
        "validation": _str(VALIDATION_SOURCES),
        "heldout_fraction": _float(0.0, 1.0, lo_open=True, hi_open=True),
        "val_labels": _int(1),
    },
}
_DESCRIPTOR = {
    "descriptor": {
        "margin": _float(0.0, lo_open=True),
        "bn_passes": _int(1, 3),
        "examples_per_epoch": _int(1),
        "schedule": _str(),
        "far_gap": _int(1),
        "distinct_anchors": _bool(),
        "val_triplets": _int(1),
        "loss": _str(tuple(steps.DESCRIPTOR_LOSSES)),
        "sos_weight": _float(0.0),
        "sos_k": _int(1),
        "augment": _str(tuple(augment.AUGMENTATIONS)),
    },
}
SCHEMAS: dict[str, dict[str, Any]] = {
    "denoiser": {**_COMMON, **_HPATCHES_DATA,
                 "transfer": {"pretrained_workdir": _str(), "checkpoint": _checkpoint_ref()}},
    "descriptor": {**_COMMON, **_HPATCHES_DATA, **_DESCRIPTOR,
                   "input": {"source": _str(inference.INPUTS), "denoiser_workdir": _str(),
                             "denoiser_checkpoint": _checkpoint_ref(),
                             "denoise_batch_size": _int(1)}},
    "joint": {**_COMMON, **_HPATCHES_DATA, **_DESCRIPTOR,
              "finetune": {"denoiser_workdir": _str(), "denoiser_checkpoint": _checkpoint_ref(),
                           "descriptor_workdir": _str(),
                           "descriptor_checkpoint": _checkpoint_ref(),
                           "mae_weight": _float(0.0)}},
    "dncnn_pretrain": {**_COMMON,
                       "awgn": {
                           "train_photos": _names(),
                           "val_photos": _names(),
                           "train_crops": _int(1),
                           "val_crops": _int(1),
                           "sigma_min": _float(0.0, 255.0),
                           "sigma_max": _float(0.0, 255.0),
                       }},
}
# Aliases accepted in `descriptor.schedule` besides strategy names and
# "name:epochs,name:epochs" curricula.
SCHEDULE_ALIASES = {"curriculum": triplets.DEFAULT_CURRICULUM}


def parse_schedule(spec: str) -> str | tuple[tuple[str, int], ...]:
  """`descriptor.schedule` -> what the triplet pipeline takes.

  Args:
    spec: a strategy name ("regular"), "curriculum" (the seed's proposal:
      tough_positive 10 epochs, regular 35, far_negative 5), or a
      curriculum "tough_positive:10,regular:35,far_negative:5".

  Returns:
    A strategy name or a tuple of (strategy, epochs).

  Raises:
    ConfigError: unknown strategy or malformed entry.
  """
  if spec in SCHEDULE_ALIASES:
    return SCHEDULE_ALIASES[spec]
  if ":" not in spec:
    triplets.get_strategy(spec)
    return spec
  entries = []
  for part in spec.split(","):
    name, _, epochs = part.strip().partition(":")
    if not epochs.strip().isdigit():
      _fail("descriptor.schedule", '"strategy" or "strategy:epochs,..." with integer epochs',
            spec)
    entries.append((name.strip(), int(epochs)))
  return triplets.as_schedule(entries)


def _walk(schema: Mapping[str, Any], values: Mapping[str, Any], prefix: str) -> None:
  unknown = sorted(set(values) - set(schema))
  if unknown:
    raise errors.ConfigError(
        f"config{'.' + prefix.rstrip('.') if prefix else ''}: unknown field(s) "
        f"{', '.join(prefix + k for k in unknown)}; known: {', '.join(sorted(schema))}")
  for key, spec in schema.items():
    field = prefix + key
    if key not in values:
      raise errors.ConfigError(f"config.{field}: missing (every {values.get('recipe', '')} "
                               "config sets it; start from a file in experiments/configs)")
    if isinstance(spec, Mapping):
      if not isinstance(values[key], Mapping):
        _fail(field, "a section (ConfigDict)", values[key])
      _walk(spec, values[key], field + ".")
    else:
      spec(field, values[key])


def validate(config: ml_collections.ConfigDict, *, device_count: int | None = None) -> None:
  """Raises ConfigError on the first problem of `config`; returns None if it is usable.

  Args:
    config: an experiment config (experiments/configs/*.py).
    device_count: devices available; when given, `parallel.num_devices` must
      not exceed it and must divide the batch sizes.
  """
  values = config.to_dict() if isinstance(config, ml_collections.ConfigDict) else dict(config)
  recipe = values.get("recipe")
  if recipe not in SCHEMAS:
    _fail("recipe", f"one of {', '.join(SCHEMAS)}", recipe)
  _walk(SCHEMAS[recipe], values, "")
  _check_combinations(values, device_count)


def _check_combinations(c: dict[str, Any], device_count: int | None) -> None:
  recipe, model, opt = c["recipe"], c["model"], c["optimizer"]
  if model["name"] not in RECIPE_MODELS[recipe]:
    _fail("model.name", f"for recipe {recipe!r} one of {', '.join(RECIPE_MODELS[recipe])}",
          model["name"])
  if "dtype" in model["kwargs"]:
    _fail("model.kwargs.dtype", "no dtype here (set config.dtype)", model["kwargs"]["dtype"])
  get_model(model["name"], **model["kwargs"])  # ConfigError names unknown attributes
  if opt["nesterov"] and opt["momentum"] <= 0:
    _fail("optimizer.nesterov", "False when optimizer.momentum is 0", opt["nesterov"])
  if opt["name"] == "adam" and (opt["momentum"] or opt["nesterov"]):
    _fail("optimizer.momentum", "0 and nesterov False for adam (it has its own moments)",
          opt["momentum"])
  if recipe == "denoiser":
    transfer = model["name"] == "dncnn_transfer"
    if transfer != bool(c["transfer"]["pretrained_workdir"]):
      _fail("transfer.pretrained_workdir",
            "a pretrain_dncnn workdir for model dncnn_transfer, and empty otherwise",
            c["transfer"]["pretrained_workdir"])
  if recipe == "joint":
    for part in ("denoiser", "descriptor"):   # each is a model of that recipe
      name = model["kwargs"][part]["name"]
      if name not in RECIPE_MODELS[part]:
        _fail(f"model.kwargs.{part}.name", f"one of {', '.join(RECIPE_MODELS[part])}", name)
      if not c["finetune"][f"{part}_workdir"]:
        _fail(f"finetune.{part}_workdir", f"the workdir of a trained {part} (joint fine-tuning "
              "starts from trained networks)", "")
  if recipe in ("descriptor", "joint"):
    parse_schedule(c["descriptor"]["schedule"])
    passes = steps.PAIR_BN_PASSES if c["descriptor"]["loss"] == "hardest_in_batch" \
        else steps.BN_PASSES
    if c["descriptor"]["bn_passes"] not in passes:
      _fail("descriptor.bn_passes", f"one of {passes} for loss {c['descriptor']['loss']!r}",
            c["descriptor"]["bn_passes"])
  if recipe == "descriptor":
    needs_denoiser = c["input"]["source"] == "denoised"
    if needs_denoiser != bool(c["input"]["denoiser_workdir"]):
      _fail("input.denoiser_workdir",
            "a denoiser workdir when input.source is 'denoised', and empty otherwise",
            c["input"]["denoiser_workdir"])
  if recipe == "dncnn_pretrain":
    awgn = c["awgn"]
    if awgn["sigma_max"] < awgn["sigma_min"]:
      _fail("awgn.sigma_max", f">= awgn.sigma_min ({awgn['sigma_min']})", awgn["sigma_max"])
    if not awgn["train_photos"] or not awgn["val_photos"]:
      _fail("awgn.train_photos", "non-empty train and validation photo lists",
            (awgn["train_photos"], awgn["val_photos"]))
    for field in ("train_photos", "val_photos"):
      unknown = sorted(set(awgn[field]) - set(generator.PHOTOS))
      if unknown:
        _fail(f"awgn.{field}", f"names of bundled photos ({', '.join(generator.PHOTOS)})",
              unknown)
    if set(awgn["train_photos"]) & set(awgn["val_photos"]):
      _fail("awgn.val_photos", "photos disjoint from awgn.train_photos", awgn["val_photos"])
  requested = c["parallel"]["num_devices"]
  if device_count is not None and requested > device_count:
    _fail("parallel.num_devices", f"at most the {device_count} available devices (0: all)",
          requested)
  if requested:
    for field in ("batch_size", "eval_batch_size"):
      if c["training"][field] % requested:
        _fail(f"training.{field}", f"a multiple of parallel.num_devices={requested}",
              c["training"][field])
