"""Pure train and eval steps: (state, batch) -> (state, metrics) and (state, batch) -> sums.

No I/O, no Python side effects: the loop jits them with shardings. Batches
arrive as uint8 pixels and are cast to float32 here, on the device (a quarter
of the host-to-device traffic). Batch norm statistics travel in the state;
dropout keys are `fold_in(state.rng, state.step)`, so a resumed run draws the
same masks as an uninterrupted one.

Descriptor batch norm (`bn_passes`): the course's Keras baseline calls its
shared L2-Net three times (anchor, positive, negative), so each of the three
gets its own batch-norm batch and the running statistics are updated three
times per step, in that order. `bn_passes=3` reproduces that (the default);
`bn_passes=1` sends the concatenated 3B patches through one pass: one
batch-norm batch over all three, one running-statistics update, fewer and
larger convolutions.
"""

import math

import jax
import jax.numpy as jnp
import optax

from nhp_jax import losses

BN_PASSES = (1, 3)
_TRIPLET = ("anchor", "positive", "negative")


def _pixels(x: jax.Array) -> jax.Array:
  return jnp.asarray(x, jnp.float32)


def _apply_train(state, params, batch_stats, x, key):
  """Model in train mode; returns (output, new batch_stats)."""
  out, new_vars = state.apply_fn({"params": params, "batch_stats": batch_stats}, x,
                                 train=True, rngs={"dropout": key}, mutable=["batch_stats"])
  return out, new_vars.get("batch_stats", batch_stats)


def _optimizer_metrics(state, grads):
  # lr of the step just taken, i.e. at the pre-update step count.
  return {"grad_norm": optax.global_norm(grads), "lr": state.lr_fn(state.step)}


def denoiser_train_step(state, batch):
  """One MAE step of a denoiser.

  Args:
    state: TrainState of a denoiser (noisy -> clean pixels).
    batch: {"noisy", "clean"}: (B, 32, 32, 1) uint8 (or float) pixels 0..255.

  Returns:
    (next state, metrics): "loss" (MAE in pixel units), "psnr" (dB, of the
    prediction clipped to 0..255), "grad_norm", "lr"; each () float32.
  """
  noisy, clean = _pixels(batch["noisy"]), _pixels(batch["clean"])

  def loss_fn(params):
    pred, stats = _apply_train(state, params, state.batch_stats, noisy, state.step_key())
    return losses.mae(pred, clean), (pred, stats)

  (loss, (pred, stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  metrics = {"loss": loss, "psnr": losses.psnr(jnp.clip(pred, 0.0, 255.0), clean),
             **_optimizer_metrics(state, grads)}
  return state.apply_gradients(grads, stats), metrics


def descriptor_train_step(state, batch, *, margin: float = 1.0, bn_passes: int = 3):
  """One triplet-loss step of the descriptor.

  Args:
    state: TrainState of a descriptor (pixels -> (B, 128) descriptors).
    batch: {"anchor", "positive", "negative"}: (B, 32, 32, 1) uint8 (or
      float) pixels 0..255.
    margin: the triplet hinge's margin, in units of d (squared L2 / 128).
    bn_passes: 3: anchor, positive and negative through separate passes
      (three batch-norm batches, the Keras baseline); 1: one pass over the
      3B patches (see the module docstring).

  Returns:
    (next state, metrics): "loss", "active_fraction" (triplets with a
    positive hinge), "d_pos" and "d_neg" (mean d(a, p), d(a, n)),
    "grad_norm", "lr"; each () float32.
  """
  if bn_passes not in BN_PASSES:
    raise ValueError(f"bn_passes must be one of {BN_PASSES}, got {bn_passes}")
  xs = [_pixels(batch[k]) for k in _TRIPLET]
  key = state.step_key()

  def loss_fn(params):
    if bn_passes == 1:
      desc, stats = _apply_train(state, params, state.batch_stats, jnp.concatenate(xs), key)
      a, p, n = jnp.split(desc, 3)
    else:
      stats, descs = state.batch_stats, []
      for i, x in enumerate(xs):
        d, stats = _apply_train(state, params, stats, x, jax.random.fold_in(key, i))
        descs.append(d)
      a, p, n = descs
    return losses.triplet_margin(a, p, n, margin), (stats, losses.triplet_metrics(a, p, n, margin))

  (loss, (stats, extra)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  metrics = {"loss": loss, **extra, **_optimizer_metrics(state, grads)}
  return state.apply_gradients(grads, stats), metrics


def _masked_sums(mask, per_example: dict) -> dict:
  mask = _pixels(mask)
  return {"count": jnp.sum(mask), **{k: jnp.sum(mask * v) for k, v in per_example.items()}}


def denoiser_eval_step(state, batch):
  """Validation sums of a denoiser (inference mode: running statistics, no dropout).

  Args:
    state: TrainState of a denoiser.
    batch: {"noisy", "clean"}: (B, 32, 32, 1) uint8 pixels 0..255, and
      "mask": (B,) float32, 1 for real rows, 0 for padding.

  Returns:
    () float32 sums over the real rows: "count", "loss" (per-patch MAE),
    "sq_err" (per-patch MSE of the prediction clipped to 0..255). Add them
    over batches and finish with `denoiser_eval_summary`.
  """
  clean = _pixels(batch["clean"])
  pred = state.apply_fn(state.variables, _pixels(batch["noisy"]), train=False)
  pred = pred.astype(jnp.float32)
  return _masked_sums(batch["mask"], {
      "loss": jnp.mean(jnp.abs(pred - clean), axis=(1, 2, 3)),
      "sq_err": jnp.mean(jnp.square(jnp.clip(pred, 0.0, 255.0) - clean), axis=(1, 2, 3))})


def denoiser_eval_summary(totals: dict) -> dict[str, float]:
  """Sums of `denoiser_eval_step` over the validation set -> {"loss" (MAE), "psnr" (dB)}."""
  n = max(float(totals["count"]), 1.0)
  mse = float(totals["sq_err"]) / n
  psnr = 10.0 * math.log10(255.0**2 / mse) if mse > 0 else math.inf
  return {"loss": float(totals["loss"]) / n, "psnr": psnr}


def descriptor_eval_step(state, batch, *, margin: float = 1.0):
  """Validation sums of a descriptor (inference mode: one pass is exact).

  Args:
    state: TrainState of a descriptor.
    batch: {"anchor", "positive", "negative"}: (B, 32, 32, 1) uint8 pixels
      0..255, and "mask": (B,) float32, 1 for real rows, 0 for padding.
    margin: the triplet hinge's margin.

  Returns:
    () float32 sums over the real triplets: "count", "loss", "active_fraction",
    "d_pos", "d_neg". Finish with `descriptor_eval_summary`.
  """
  x = jnp.concatenate([_pixels(batch[k]) for k in _TRIPLET])
  a, p, n = jnp.split(state.apply_fn(state.variables, x, train=False), 3)
  d_pos, d_neg = losses.squared_distance(a, p), losses.squared_distance(a, n)
  hinge = jnp.maximum(0.0, d_pos - d_neg + margin)
  return _masked_sums(batch["mask"], {"loss": hinge, "active_fraction": (hinge > 0),
                                      "d_pos": d_pos, "d_neg": d_neg})


def descriptor_eval_summary(totals: dict) -> dict[str, float]:
  """Sums of `descriptor_eval_step` -> means per triplet of each metric."""
  n = max(float(totals["count"]), 1.0)
  return {k: float(v) / n for k, v in totals.items() if k != "count"}
