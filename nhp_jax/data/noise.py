"""The noise model that turns clean patches into their `_noise` copies.

N-HPatches does not document how its noisy copies were made, so nhp_jax uses
this model wherever it must synthesise them (the embedded dataset, and the
public 65x65 HPatches release, which has no noisy copies):

  x     = clean patch (optionally Gaussian-blurred by `blur_sigma` px)
  sigma ~ U(sigma_min, sigma_max), drawn once per sequence
  noisy = round(clip(x + sqrt(sigma^2 + signal_gain * x) * z, 0, 255)),
          z ~ N(0, 1) i.i.d. per pixel, per patch and per image

i.e. sensor-like Poisson-Gaussian noise: a signal-independent read noise
whose level differs between sequences (so a denoiser must estimate it), plus
a shot-noise part whose variance grows with brightness. Every pixel of every
image of a sequence gets its own draw, so a `ref` patch and its `e1` copy
carry independent noise. Draws come from a generator seeded by (seed,
sequence name), so a sequence's noisy copy does not depend on which other
sequences are generated or read alongside it.
"""

import dataclasses
import hashlib

import numpy as np
import scipy.ndimage

from nhp_jax.errors import ConfigError

# Bump when the model or its defaults change: caches and embedded datasets key on it.
NOISE_VERSION = 1


@dataclasses.dataclass(frozen=True)
class NoiseConfig:
  """Parameters of the noise model (grey levels of an 8-bit image).

  Attributes:
    sigma_min: lower end of the per-sequence read-noise standard deviation.
    sigma_max: upper end of it.
    signal_gain: shot-noise variance per grey level (0 disables it): a pixel
      of value v gets extra variance signal_gain * v.
    blur_sigma: Gaussian blur (pixels) applied before the noise; 0 = none.
  """
  sigma_min: float = 15.0
  sigma_max: float = 30.0
  signal_gain: float = 0.5
  blur_sigma: float = 0.0

  def __post_init__(self):
    for name in ("sigma_min", "sigma_max", "signal_gain", "blur_sigma"):
      value = getattr(self, name)
      if not np.isfinite(value) or value < 0:
        raise ConfigError(f"NoiseConfig.{name} must be a finite number >= 0, got {value!r}")
    if self.sigma_min > self.sigma_max:
      raise ConfigError(f"NoiseConfig.sigma_min ({self.sigma_min}) must be <= "
                        f"sigma_max ({self.sigma_max})")


DEFAULT = NoiseConfig()


def sequence_rng(seed: int, name: str, stream: str = "noise") -> np.random.Generator:
  """A generator that depends only on (seed, sequence name, stream), stable across platforms.

  Args:
    seed: dataset seed, an int >= 0.
    name: sequence name, e.g. "i_astronaut_0".
    stream: what the draws are for, so that different uses of one sequence
      get independent streams.
  """
  digest = hashlib.sha256(f"{stream}/{name}".encode()).digest()
  words = np.frombuffer(digest[:16], dtype="<u4").tolist()
  return np.random.default_rng(np.random.SeedSequence([int(seed), *words]))


def add_noise(clean: np.ndarray, rng: np.random.Generator,
              config: NoiseConfig = DEFAULT) -> np.ndarray:
  """Noisy copy of all patches of one sequence.

  Args:
    clean: (N, I, H, W) uint8, 0..255: N labels x I images (16 for a
      sequence) of H x W patches.
    rng: the sequence's generator (`sequence_rng`); consumed.
    config: noise parameters.

  Returns:
    (N, I, H, W) uint8, 0..255.
  """
  if clean.dtype != np.uint8 or clean.ndim != 4:
    raise ValueError(f"add_noise expects (N, I, H, W) uint8, got {clean.dtype} {clean.shape}")
  sigma = rng.uniform(config.sigma_min, config.sigma_max)
  x = clean.astype(np.float32)
  if config.blur_sigma > 0:
    x = scipy.ndimage.gaussian_filter(x, (0, 0, config.blur_sigma, config.blur_sigma),
                                      mode="reflect")
  std = np.sqrt(np.float32(sigma) ** 2 + np.float32(config.signal_gain) * x)
  x += std * rng.standard_normal(x.shape, dtype=np.float32)
  return np.rint(np.clip(x, 0, 255)).astype(np.uint8)
