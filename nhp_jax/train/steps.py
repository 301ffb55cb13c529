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
larger convolutions. The steps take `bn_passes` as given: a config's value
is checked against its loss (`BN_PASSES`, `PAIR_BN_PASSES`) by
`config_validation` before any training.

Hardest-in-batch descriptor loss (HardNet): batches of anchor-positive pairs
of distinct labels; each pair's negative is the closest other descriptor of
the batch (`losses.hardest_in_batch`), optionally plus SOSNet's second-order
similarity regulariser. Batch norm: `bn_passes=2` sends anchors and
positives through separate passes, as HardNet's code does; 1 is one pass
over the 2B patches. It is validated on the same fixed triplets as the
triplet loss, scored with the per-triplet form of its own loss (Euclidean
distances, given negative instead of the batch's hardest), which is the
criterion the best checkpoint is picked by.

Joint fine-tuning (`joint_train_step`, model `denoise_describe`): the noisy
patches of a triplet or anchor-positive batch go through the denoiser in one
pass, its clipped output through the descriptor as in that loss's own step;
the loss adds `mae_weight` x the denoiser's MAE against the batch's clean
patches, and the gradient reaches both networks.

Augmentation (`augment`, see `nhp_jax.data.augment`): applied on the device
to the uint8 batch before the model, anchor and positive with one transform
per row, a triplet's negative with its own; keys from the state's step key,
so a resumed run replays them. "none" leaves the step exactly as without it.
"""

import math

import jax
import jax.numpy as jnp
import optax

from nhp_jax import losses
from nhp_jax.data import augment as augment_lib
from nhp_jax.models import denoise_describe

BN_PASSES = (1, 3)
PAIR_BN_PASSES = (1, 2)
_TRIPLET = ("anchor", "positive", "negative")
_PAIR = ("anchor", "positive")
# Anchor and positive share one transform per row; a negative gets its own.
_AUGMENT_GROUPS = (("anchor", "positive"), ("negative",))
# fold_in tag of the augmentation key: away from the 0, 1, 2 the dropout keys use.
_AUGMENT_STREAM = 1 << 20
# fold_in tag of the joint step's denoiser dropout key.
_DENOISER_STREAM = 1 << 21
# Batch keys of the clean counterparts of a joint step's noisy patches.
CLEAN_PREFIX = "clean_"


def _pixels(x: jax.Array) -> jax.Array:
  return jnp.asarray(x, jnp.float32)


def _apply_train(state, params, batch_stats, x, key, method=None):
  """Model (or its `method`) in train mode; returns (output, new batch_stats)."""
  out, new_vars = state.apply_fn({"params": params, "batch_stats": batch_stats}, x,
                                 train=True, rngs={"dropout": key}, mutable=["batch_stats"],
                                 method=method)
  return out, new_vars.get("batch_stats", batch_stats)


def _augmented(batch, names, augment, key, groups=_AUGMENT_GROUPS):
  """The batch's `names` entries, augmented with `augment` when it is not "none".

  Every entry of a group gets the same transform per row (`groups`).
  """
  batch = {k: batch[k] for k in names}
  if augment == "none":
    return batch
  groups = [[k for k in g if k in batch] for g in groups]
  return augment_lib.get_augmentation(augment)(
      jax.random.fold_in(key, _AUGMENT_STREAM), batch, [g for g in groups if g])


def _describe(state, params, batch_stats, xs, key, bn_passes, method=None):
  """Descriptors of each of `xs` in train mode: one pass over all, or one pass each.

  Returns:
    (list of descriptors, one per x; new batch_stats).
  """
  if bn_passes == 1:
    desc, stats = _apply_train(state, params, batch_stats, jnp.concatenate(xs), key, method)
    return jnp.split(desc, len(xs)), stats
  stats, descs = batch_stats, []
  for i, x in enumerate(xs):
    d, stats = _apply_train(state, params, stats, x, jax.random.fold_in(key, i), method)
    descs.append(d)
  return descs, stats


def _objective(loss: str, descs, *, margin: float, sos_weight: float = 0.0, sos_k: int = 8):
  """(loss value, metrics) of descriptor loss `loss` on [a, p, n] or [a, p] descriptors."""
  if loss == "triplet":
    a, p, n = descs
    return losses.triplet_margin(a, p, n, margin), losses.triplet_metrics(a, p, n, margin)
  a, p = descs
  value = losses.hardest_in_batch(a, p, margin)
  extra = losses.hardest_in_batch_metrics(a, p, margin)
  if sos_weight:
    extra["sos"] = losses.second_order_similarity(a, p, sos_k)
    value = value + sos_weight * extra["sos"]
  return value, extra


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


def descriptor_train_step(state, batch, *, margin: float = 1.0, bn_passes: int = 3,
                          augment: str = "none"):
  """One triplet-loss step of the descriptor.

  Args:
    state: TrainState of a descriptor (pixels -> (B, 128) descriptors).
    batch: {"anchor", "positive", "negative"}: (B, 32, 32, 1) uint8 (or
      float) pixels 0..255.
    margin: the triplet hinge's margin, in units of d (squared L2 / 128).
    bn_passes: 3: anchor, positive and negative through separate passes
      (three batch-norm batches, the Keras baseline); 1: one pass over the
      3B patches (see the module docstring).
    augment: a key of `augment.AUGMENTATIONS`.

  Returns:
    (next state, metrics): "loss", "active_fraction" (triplets with a
    positive hinge), "d_pos" and "d_neg" (mean d(a, p), d(a, n)),
    "grad_norm", "lr"; each () float32.
  """
  key = state.step_key()
  batch = _augmented(batch, _TRIPLET, augment, key)
  xs = [_pixels(batch[k]) for k in _TRIPLET]

  def loss_fn(params):
    descs, stats = _describe(state, params, state.batch_stats, xs, key, bn_passes)
    loss, extra = _objective("triplet", descs, margin=margin)
    return loss, (stats, extra)

  (loss, (stats, extra)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  metrics = {"loss": loss, **extra, **_optimizer_metrics(state, grads)}
  return state.apply_gradients(grads, stats), metrics


def hardest_in_batch_train_step(state, batch, *, margin: float = 1.0, bn_passes: int = 2,
                                sos_weight: float = 0.0, sos_k: int = 8,
                                augment: str = "none"):
  """One HardNet step: hardest-in-batch triplet margin (+ SOS regulariser).

  Args:
    state: TrainState of a descriptor (pixels -> (B, 128) descriptors,
      L2-normalised for HardNet).
    batch: {"anchor", "positive"}: (B, 32, 32, 1) uint8 (or float) pixels
      0..255; row i of both is one label, all B labels distinct.
    margin: hinge margin in Euclidean distance units (HardNet: 1).
    bn_passes: 2: anchors and positives through separate passes (HardNet);
      1: one pass over the 2B patches.
    sos_weight: weight of `losses.second_order_similarity`; 0: off (not
      computed).
    sos_k: its neighbours per set, 1 <= sos_k < B.
    augment: a key of `augment.AUGMENTATIONS`.

  Returns:
    (next state, metrics): "loss" (the total), "active_fraction" (pairs with
    a positive hinge), "d_pos", "d_neg" (mean Euclidean positive and hardest
    negative distances), "sos" (the unweighted regulariser, when on),
    "grad_norm", "lr"; each () float32.
  """
  key = state.step_key()
  batch = _augmented(batch, _PAIR, augment, key)
  xs = [_pixels(batch[k]) for k in _PAIR]

  def loss_fn(params):
    descs, stats = _describe(state, params, state.batch_stats, xs, key, bn_passes)
    loss, extra = _objective("hardest_in_batch", descs, margin=margin, sos_weight=sos_weight,
                             sos_k=sos_k)
    return loss, (stats, extra)

  (loss, (stats, extra)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  metrics = {"loss": loss, **extra, **_optimizer_metrics(state, grads)}
  return state.apply_gradients(grads, stats), metrics


def joint_train_step(state, batch, *, loss: str = "triplet", mae_weight: float = 0.1,
                     margin: float = 1.0, bn_passes: int = 3, sos_weight: float = 0.0,
                     sos_k: int = 8, augment: str = "none"):
  """One end-to-end step of a denoiser and a descriptor (`models.denoise_describe`).

  The noisy patches of the batch go through the denoiser in one pass; its
  output, clipped to 0..255, goes through the descriptor as in that loss's
  own step; the loss is descriptor loss + mae_weight * MAE(denoised, clean),
  and its gradient reaches both networks.

  Args:
    state: TrainState of a `DenoiseDescribe` model.
    batch: noisy {"anchor", "positive"[, "negative"]} and their clean
      counterparts {"clean_anchor", ...}: (B, 32, 32, 1) uint8 pixels 0..255;
      "negative" for `loss="triplet"`, anchor-positive rows of distinct labels
      for "hardest_in_batch".
    loss: "triplet" or "hardest_in_batch" (a key of `DESCRIPTOR_LOSSES`).
    mae_weight: weight of the denoiser's MAE (pixel units) in the loss.
    margin, bn_passes, sos_weight, sos_k, augment: as in that loss's step
      (bn_passes counts the descriptor's passes; the clean patches get the
      same transform as their noisy ones).

  Returns:
    (next state, metrics): "loss" (the total), "descriptor_loss", "mae",
    that loss's own metrics, "grad_norm", "lr"; each () float32.
  """
  names = _TRIPLET if loss == "triplet" else _PAIR
  key = state.step_key()
  groups = tuple(g + tuple(CLEAN_PREFIX + k for k in g) for g in _AUGMENT_GROUPS)
  batch = _augmented(batch, names + tuple(CLEAN_PREFIX + k for k in names), augment, key,
                     groups)
  noisy = jnp.concatenate([_pixels(batch[k]) for k in names])
  clean = jnp.concatenate([_pixels(batch[CLEAN_PREFIX + k]) for k in names])

  def loss_fn(params):
    denoised, stats = _apply_train(state, params, state.batch_stats, noisy,
                                   jax.random.fold_in(key, _DENOISER_STREAM), "denoise")
    mae = losses.mae(denoised, clean)
    xs = jnp.split(jnp.clip(denoised, 0.0, denoise_describe.PIXEL_MAX), len(names))
    descs, stats = _describe(state, params, stats, xs, key, bn_passes, "describe")
    value, extra = _objective(loss, descs, margin=margin, sos_weight=sos_weight, sos_k=sos_k)
    return value + mae_weight * mae, (stats, {"descriptor_loss": value, "mae": mae, **extra})

  (total, (stats, extra)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  metrics = {"loss": total, **extra, **_optimizer_metrics(state, grads)}
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


def hardest_in_batch_eval_step(state, batch, *, margin: float = 1.0):
  """Validation sums of a hardest-in-batch descriptor on fixed triplets (inference mode).

  The per-triplet form of the training loss: max(0, margin + |a - p| -
  |a - n|), Euclidean distances, the triplet's negative in place of the
  batch's hardest (which would depend on how validation is batched).

  Args:
    state: TrainState of a descriptor.
    batch: {"anchor", "positive", "negative"}: (B, 32, 32, 1) uint8 pixels
      0..255, and "mask": (B,) float32, 1 for real rows, 0 for padding.
    margin: the hinge's margin, in Euclidean distance units.

  Returns:
    () float32 sums over the real triplets: "count", "loss",
    "active_fraction", "d_pos", "d_neg" (Euclidean). Finish with
    `descriptor_eval_summary`.
  """
  x = jnp.concatenate([_pixels(batch[k]) for k in _TRIPLET])
  a, p, n = jnp.split(state.apply_fn(state.variables, x, train=False), 3)
  d_pos, d_neg = losses.row_distances(a, p), losses.row_distances(a, n)
  hinge = jnp.maximum(0.0, margin + d_pos - d_neg)
  return _masked_sums(batch["mask"], {"loss": hinge, "active_fraction": (hinge > 0),
                                      "d_pos": d_pos, "d_neg": d_neg})


def descriptor_eval_summary(totals: dict) -> dict[str, float]:
  """Sums of `descriptor_eval_step` -> means per triplet of each metric."""
  n = max(float(totals["count"]), 1.0)
  return {k: float(v) / n for k, v in totals.items() if k != "count"}


# Descriptor losses a config may name (`descriptor.loss`): (train step, eval step).
DESCRIPTOR_LOSSES = {
    "triplet": (descriptor_train_step, descriptor_eval_step),              # the seed's
    "hardest_in_batch": (hardest_in_batch_train_step, hardest_in_batch_eval_step),  # HardNet
}
