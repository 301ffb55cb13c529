"""Reads HPatches-style patch stacks from disk into uint8 arrays.

Two layouts, detected per data root (`open_source`):

* `nhpatches`: `<root>/hpatches/<seq>/<tp>.png` and `<tp>_noise.png` (or
  `<root>/<seq>/...` when there is no `hpatches/` folder), tp in
  `layout.IMAGE_TYPES`. Each PNG is 8-bit grey, 32 px wide, a vertical stack of
  N 32x32 patches; row i of all 32 images of a sequence is label i.
* `hpatches`: the public release, `<root>/<seq>/<tp>.png` (or under
  `<root>/hpatches-release/`), 65 px wide stacks and no noisy copies. Each
  65x65 patch is shrunk to 32x32 by area averaging (`resize_area`) and the
  noisy copy is synthesised by `noise.add_noise`, seeded by (noise seed,
  sequence name).

PNGs are decoded with Pillow, which releases the GIL while inflating, so a few
threads decode a split in parallel. Every malformed input raises one
`DataError` naming the file, what was expected and what was found; all
headers are checked before any pixel is decoded.
"""

import concurrent.futures
import dataclasses
import os
import struct

import numpy as np
from PIL import Image

from nhp_jax import progress
from nhp_jax.data import layout as layout_lib
from nhp_jax.data import noise
from nhp_jax.data import patchset
from nhp_jax.errors import DataError

# Bump when decoding or resizing changes: the cache keys on it.
READER_VERSION = 1

# Patch width of each layout, and the subfolder that holds its sequences, if any.
LAYOUT_WIDTHS = {"nhpatches": layout_lib.PATCH_SIZE, "hpatches": layout_lib.HPATCHES_PATCH_SIZE}
_SEQUENCE_SUBFOLDERS = ("hpatches", "hpatches-release")

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOUR_TYPES = {0: "greyscale", 2: "RGB", 3: "palette", 4: "greyscale+alpha", 6: "RGBA"}


@dataclasses.dataclass(frozen=True)
class Source:
  """Where a data root keeps its sequences and how to read them.

  Attributes:
    layout: "nhpatches" or "hpatches" (see the module docstring).
    root: the folder holding the `<seq>/` folders.
    noise_config: noise model for layouts without noisy copies.
    noise_seed: seed of that noise (with the sequence name).
  """
  layout: str
  root: str
  noise_config: noise.NoiseConfig = noise.DEFAULT
  noise_seed: int = 0

  @property
  def width(self) -> int:
    return LAYOUT_WIDTHS[self.layout]

  def sequence_dir(self, name: str) -> str:
    return os.path.join(self.root, name)

  def files(self, name: str) -> tuple[str, ...]:
    """PNG paths of sequence `name`: 16 clean images, then (N-HPatches) their 16 noisy copies."""
    suffixes = ("", layout_lib.NOISE_SUFFIX) if self.layout == "nhpatches" else ("",)
    d = self.sequence_dir(name)
    return tuple(os.path.join(d, f"{tp}{s}.png") for s in suffixes for tp in layout_lib.IMAGE_TYPES)


def png_size(path: str) -> tuple[int, int]:
  """(height, width) of an 8-bit greyscale PNG, read from its header only.

  Raises:
    DataError: missing file, not a PNG, or not 8-bit greyscale.
  """
  try:
    with open(path, "rb") as f:
      head = f.read(33)
  except FileNotFoundError:
    raise DataError(f"{path}: image not found (expected an 8-bit grey PNG here)") from None
  except IsADirectoryError:
    raise DataError(f"{path}: expected an 8-bit grey PNG, found a folder") from None
  if len(head) < 33 or not head.startswith(_PNG_SIGNATURE) or head[12:16] != b"IHDR":
    found = ("an empty file" if not head else
             "a truncated PNG header" if _PNG_SIGNATURE.startswith(head[:8]) else
             f"a file starting {head[:8]!r}")
    raise DataError(f"{path}: expected a PNG file, found {found}")
  width, height, depth, colour = struct.unpack(">IIBB", head[16:26])
  if depth != 8 or colour != 0:
    kind = _COLOUR_TYPES.get(colour, f"colour type {colour}")
    raise DataError(f"{path}: expected an 8-bit greyscale PNG, found {depth}-bit {kind}")
  return height, width


def read_png(path: str) -> np.ndarray:
  """Decodes an 8-bit greyscale PNG.

  Returns:
    (H, W) uint8, 0..255.

  Raises:
    DataError: the file is missing, not a PNG, not 8-bit grey, or truncated/corrupt.
  """
  png_size(path)
  try:
    with Image.open(path) as im:
      im.load()
      if im.mode != "L":
        raise DataError(f"{path}: expected an 8-bit greyscale PNG, found Pillow mode {im.mode}")
      return np.asarray(im)
  except DataError:
    raise
  except (OSError, SyntaxError, ValueError, EOFError) as e:
    raise DataError(f"{path}: expected a complete 8-bit grey PNG, found a truncated or "
                    f"corrupt file ({e})") from None


def _stack_count(path: str, width: int, layout: str) -> int:
  """Number of width x width patches stacked in `path`, from its header."""
  height, found_width = png_size(path)
  if found_width != width:
    raise DataError(f"{path}: expected a {width} px wide stack of {width}x{width} patches "
                    f"({layout} layout), found an image {found_width} px wide "
                    f"(height {height})")
  if height % width:
    raise DataError(f"{path}: expected a height that is a multiple of {width} "
                    f"(a stack of {width}x{width} patches), found height {height}")
  return height // width


def open_source(data_root: str | os.PathLike, layout: str | None = None,
                noise_config: noise.NoiseConfig = noise.DEFAULT, noise_seed: int = 0) -> Source:
  """Finds where a data root keeps its sequences and which layout they use.

  Args:
    data_root: an N-HPatches root (`<root>/hpatches/<seq>/`) or an HPatches
      release root (`<root>/<seq>/` or `<root>/hpatches-release/<seq>/`).
    layout: "nhpatches" or "hpatches"; None detects it from the width
      of the first sequence's `ref.png` (32 or 65).
    noise_config, noise_seed: noise for layouts without noisy copies.

  Raises:
    DataError: the root is missing or holds no sequence folder.
  """
  data_root = os.fspath(data_root)
  if not os.path.isdir(data_root):
    raise DataError(f"{data_root}: data folder not found (expected an N-HPatches or "
                    f"HPatches root holding <seq>/ref.png folders)")
  root = data_root
  for sub in _SEQUENCE_SUBFOLDERS:
    if os.path.isdir(os.path.join(data_root, sub)):
      root = os.path.join(data_root, sub)
      break
  if layout is None:
    refs = sorted(os.path.join(root, d, "ref.png") for d in os.listdir(root)
                  if not d.startswith(".") and os.path.isfile(os.path.join(root, d, "ref.png")))
    if not refs:
      raise DataError(f"{root}: expected sequence folders <seq>/ref.png, found none")
    width = png_size(refs[0])[1]
    by_width = {w: name for name, w in LAYOUT_WIDTHS.items()}
    if width not in by_width:
      raise DataError(f"{refs[0]}: expected a stack 32 px wide (N-HPatches) or 65 px wide "
                      f"(HPatches release), found width {width}")
    layout = by_width[width]
  if layout not in LAYOUT_WIDTHS:
    raise DataError(f"unknown layout {layout!r}; known layouts: {', '.join(LAYOUT_WIDTHS)}")
  return Source(layout, root, noise_config, noise_seed)


def check_sequences(source: Source, sequences: list[str] | tuple[str, ...],
                    listed_in: str | None = None) -> None:
  """Raises DataError unless `sequences` is a non-empty list of distinct folders of `source`.

  `listed_in` says where the list came from (e.g. a splits file), for the message.
  """
  if not sequences:
    raise DataError(f"{source.root}: expected a non-empty list of sequences to read, found none")
  dups = sorted({s for s in sequences if sequences.count(s) > 1})
  if dups:
    raise DataError(f"{source.root}: sequences listed more than once: {dups}")
  missing = [s for s in sequences if not os.path.isdir(source.sequence_dir(s))]
  if missing:
    raise DataError(f"{source.root}: sequence folders not found for {len(missing)} of "
                    f"{len(sequences)} listed sequences"
                    + (f" ({listed_in})" if listed_in else "")
                    + f": {', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}")


def sequence_count(source: Source, name: str) -> int:
  """Number of labels of sequence `name`, after checking the headers of all its images.

  Raises:
    DataError: a missing sequence folder or image, a PNG that is not 8-bit
      grey of the layout's width and a multiple of it in height, or images
      with different patch counts.
  """
  seq_dir = source.sequence_dir(name)
  if not os.path.isdir(seq_dir):
    raise DataError(f"{seq_dir}: sequence folder not found (expected {len(source.files(name))} "
                    f"PNGs of the {source.layout} layout)")
  files = source.files(name)
  first = _stack_count(files[0], source.width, source.layout)
  for path in files[1:]:
    n = _stack_count(path, source.width, source.layout)
    if n != first:
      raise DataError(f"{path}: expected {first} patches (as in {os.path.basename(files[0])}), "
                      f"found {n}")
  return first


def resize_area(patches: np.ndarray, size: int = layout_lib.PATCH_SIZE) -> np.ndarray:
  """Shrinks square patches by area averaging (each output pixel = mean of its input footprint).

  The same weights as OpenCV's INTER_AREA: an output pixel covers
  in/out input pixels, partial pixels weighted by their covered fraction.
  Anti-aliased, exact and separable, so a batch is two matrix products.

  Args:
    patches: (N, S, S) uint8, 0..255, with S >= size.
    size: output side.

  Returns:
    (N, size, size) uint8, 0..255.
  """
  s = patches.shape[-1]
  m = area_weights(s, size)
  out = np.einsum("ij,njk,lk->nil", m, patches.astype(np.float64), m, optimize=True)
  return np.rint(np.clip(out, 0, 255)).astype(np.uint8)


def area_weights(n_in: int, n_out: int) -> np.ndarray:
  """(n_out, n_in) float64 row-stochastic matrix of 1-D area resampling."""
  edges = np.arange(n_out + 1) * (n_in / n_out)
  lo, hi = edges[:-1, None], edges[1:, None]
  j = np.arange(n_in)[None, :]
  overlap = np.clip(np.minimum(hi, j + 1) - np.maximum(lo, j), 0, None)
  return overlap / (n_in / n_out)


def _decode_into(source: Source, name: str, count: int, clean: np.ndarray,
                 noisy: np.ndarray) -> None:
  """Decodes sequence `name` into clean / noisy, each (count, 16, 32, 32) uint8 views."""
  files = source.files(name)
  w = source.width
  for t in range(layout_lib.NUM_IMAGES):
    stack = read_png(files[t]).reshape(count, w, w)
    clean[:, t] = stack if source.layout == "nhpatches" else resize_area(stack)
  if source.layout == "nhpatches":
    for t in range(layout_lib.NUM_IMAGES):
      noisy[:, t] = read_png(files[layout_lib.NUM_IMAGES + t]).reshape(count, w, w)
  else:
    rng = noise.sequence_rng(source.noise_seed, name)
    noisy[...] = noise.add_noise(np.asarray(clean), rng, source.noise_config)


def read_sequence(seq_dir: str | os.PathLike, layout: str | None = None,
                  noise_config: noise.NoiseConfig = noise.DEFAULT,
                  noise_seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """Reads one sequence folder.

  Args:
    seq_dir: `<root>/<seq>` holding the 16 (+16 noisy) PNGs.
    layout: "nhpatches", "hpatches" or None (from the width of `ref.png`).
    noise_config, noise_seed: noise for the `hpatches` layout.

  Returns:
    (clean, noisy), each (N, 16, 32, 32) uint8, 0..255, axis 1 in
    `layout.IMAGE_TYPES` order.

  Raises:
    DataError: see `sequence_count` and `read_png`.
  """
  seq_dir = os.path.abspath(os.fspath(seq_dir))
  if not os.path.isdir(seq_dir):
    raise DataError(f"{seq_dir}: sequence folder not found")
  if layout is None:
    width = png_size(os.path.join(seq_dir, "ref.png"))[1]
    layout = "hpatches" if width == layout_lib.HPATCHES_PATCH_SIZE else "nhpatches"
  source = Source(layout, os.path.dirname(seq_dir), noise_config, noise_seed)
  name = os.path.basename(seq_dir)
  count = sequence_count(source, name)
  shape = (count, layout_lib.NUM_IMAGES, layout_lib.PATCH_SIZE, layout_lib.PATCH_SIZE)
  clean, noisy = np.empty(shape, np.uint8), np.empty(shape, np.uint8)
  _decode_into(source, name, count, clean, noisy)
  return clean, noisy


def read_into(source: Source, sequences: list[str], offsets: np.ndarray, clean: np.ndarray,
              noisy: np.ndarray, workers: int | None = None) -> None:
  """Decodes `sequences` into preallocated arrays (e.g. memory maps), in parallel.

  Args:
    source: from `open_source`.
    sequences: S names whose counts (`sequence_count`) gave `offsets`.
    offsets: (S + 1,) int64 label offsets.
    clean, noisy: (offsets[-1], 16, 32, 32) uint8 outputs, written in place.
    workers: decoding threads; None = min(8, CPU count).
  """
  workers = workers or min(8, os.cpu_count() or 1)
  with concurrent.futures.ThreadPoolExecutor(workers) as pool, progress.Progress(
      len(sequences), f"decoding {source.root}", unit="sequences") as bar:
    jobs = [pool.submit(_decode_into, source, name, int(offsets[s + 1] - offsets[s]),
                        clean[offsets[s]:offsets[s + 1]], noisy[offsets[s]:offsets[s + 1]])
            for s, name in enumerate(sequences)]
    for job in jobs:
      job.result()
      bar.update()


def count_labels(source: Source, sequences: list[str], workers: int | None = None) -> np.ndarray:
  """(S + 1,) int64 label offsets of `sequences`, checking every header first.

  Raises:
    DataError: an empty or duplicated list, unknown sequences, or any bad file
      (see `sequence_count`).
  """
  check_sequences(source, sequences)
  workers = workers or min(8, os.cpu_count() or 1)
  with concurrent.futures.ThreadPoolExecutor(workers) as pool:
    counts = list(pool.map(lambda n: sequence_count(source, n), sequences))
  return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)


def read_split(data_root: str | os.PathLike, sequences: list[str], layout: str | None = None,
               noise_config: noise.NoiseConfig = noise.DEFAULT, noise_seed: int = 0,
               workers: int | None = None) -> patchset.PatchSet:
  """Reads a list of sequences of a data root into memory (no cache; see `cache.load_split`).

  Args:
    data_root: see `open_source`.
    sequences: sequence names, e.g. a split's test list; labels are numbered
      in this order.
    layout, noise_config, noise_seed: see `open_source`.
    workers: decoding threads; None = min(8, CPU count).

  Returns:
    A PatchSet of the sequences.

  Raises:
    DataError: see `count_labels` and `read_png`.
  """
  source = open_source(data_root, layout, noise_config, noise_seed)
  sequences = list(sequences)
  offsets = count_labels(source, sequences, workers)
  shape = (int(offsets[-1]), layout_lib.NUM_IMAGES, layout_lib.PATCH_SIZE, layout_lib.PATCH_SIZE)
  clean, noisy = np.empty(shape, np.uint8), np.empty(shape, np.uint8)
  read_into(source, sequences, offsets, clean, noisy, workers)
  return patchset.PatchSet(tuple(sequences), offsets, clean, noisy)
