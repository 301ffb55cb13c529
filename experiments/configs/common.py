"""Sections shared by every experiment config (each config file documents its own values).

Not a config itself: `denoiser.py`, `descriptor.py` and `dncnn_pretrain.py`
build on these, and their variants import them.
"""

import ml_collections


def base(recipe: str, model: str, **model_kwargs) -> ml_collections.ConfigDict:
  """Fields every training recipe has, with the seed's defaults where it gives them."""
  c = ml_collections.ConfigDict()
  c.recipe = recipe
  c.seed = 0
  # Compute dtype: "float32", or "bfloat16" (params, optimiser and losses stay float32).
  c.dtype = "float32"
  c.model = ml_collections.ConfigDict({"name": model, "kwargs": model_kwargs})
  c.optimizer = ml_collections.ConfigDict({
      "name": "sgd",            # "sgd" or "adam"
      "learning_rate": 0.1,
      "momentum": 0.0,          # 0: plain SGD
      "nesterov": False,
      "schedule": "constant",   # "constant", "cosine" or "linear" (warmup, then decay)
      "warmup_steps": 0,
      "end_factor": 0.0,        # decaying schedules end at learning_rate * end_factor
      "frozen": (),             # top-level parameter subtrees never updated
  })
  c.training = ml_collections.ConfigDict({
      "batch_size": 50,         # global: split over all devices
      "num_epochs": 50,
      "log_every": 100,         # steps between progress lines
      "checkpoint_every": 1000,  # steps between checkpoints (and one at every epoch end)
      "keep_checkpoints": 3,    # latest ones kept, besides the best by validation loss
      "eval_batch_size": 500,
  })
  c.parallel = ml_collections.ConfigDict({
      "num_devices": 0,         # 0: all (the largest count that divides the batch)
      "distributed": False,     # jax.distributed.initialize() for multi-host jobs
  })
  return c


def adam_cosine(c: ml_collections.ConfigDict, learning_rate: float) -> ml_collections.ConfigDict:
  """Sets Adam with a cosine decay to a tenth of `learning_rate` (#9's optimiser); returns c."""
  c.optimizer.update(name="adam", learning_rate=learning_rate, momentum=0.0, nesterov=False,
                     schedule="cosine", end_factor=0.1)
  return c


def hpatches_data() -> ml_collections.ConfigDict:
  """Where the N-HPatches-layout data comes from and how it is validated."""
  return ml_collections.ConfigDict({
      "split": "a",
      "embedded_size": "medium",  # embedded dataset used when --data_dir is absent
      "embedded_seed": 0,
      "max_train_labels": 0,      # 0: every train label; else a random subset
      # "heldout": a random heldout_fraction of the train sequences; "test":
      # the test split (what the course's Keras baseline validated on).
      "validation": "heldout",
      "heldout_fraction": 0.1,
      "val_labels": 250,          # validation labels (x16 patches), a fixed random subset
  })


def smoke(c: ml_collections.ConfigDict, *, steps_per_log: int = 5) -> ml_collections.ConfigDict:
  """Shrinks a config to a run of seconds on a CPU (tiny embedded data, 2 short epochs)."""
  if "data" in c:
    c.data.embedded_size = "smoke"
    c.data.val_labels = 8
  c.training.num_epochs = 2
  c.training.log_every = steps_per_log
  c.training.checkpoint_every = 7
  c.training.eval_batch_size = 100
  return c


def check_arg(arg: str) -> None:
  if arg not in ("", "smoke"):
    raise ValueError(f"config argument must be '' or 'smoke', got {arg!r}")
