"""Descriptor folders: exact round trip, the official loader's conventions, every error up front."""

import os

import numpy as np
import pytest

from nhp_jax.data import layout
from nhp_jax.errors import DescriptorError
from nhp_jax.evaluation import descriptor_io
from nhp_jax.evaluation import types


def _descs(seed=0, counts=(5, 3, 7), dim=6):
  rng = np.random.default_rng(seed)
  offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
  values = rng.standard_normal((int(offsets[-1]), 16, dim)).astype(np.float32)
  values[0, 0, :3] = [0.0, 1e-38, -3.4e38]  # zero, tiny, huge float32 values survive
  names = tuple(f"{'iv'[i % 2]}_s{i}" for i in range(len(counts)))
  return types.DescriptorSet(names, offsets, values)


def _reference_read(path):
  """Slow obvious parser: split lines and cells, float() each, skip blank lines."""
  rows = []
  with open(path, encoding="utf-8") as f:
    for line in f:
      if line.strip():
        sep = ";" if ";" in line else ","
        rows.append([float(c) for c in line.split(sep)])
  return np.array(rows, np.float64).astype(np.float32)


@pytest.mark.parametrize("delimiter", [",", ";"])
def test_round_trip_is_exact(tmp_path, delimiter):
  descs = _descs()
  root = tmp_path / "export"
  descriptor_io.write_descriptor_folder(descs, root, delimiter=delimiter)
  assert sorted(os.listdir(root)) == sorted(descs.sequences)
  assert sorted(os.listdir(root / descs.sequences[0])) == sorted(
      f"{t}.csv" for t in layout.IMAGE_TYPES)
  back = descriptor_io.read_descriptor_folder(root, descs.sequences)
  assert back.sequences == descs.sequences
  assert np.array_equal(back.offsets, descs.offsets)
  assert back.descs.dtype == np.float32 and np.array_equal(back.descs, descs.descs)
  # A subset, in another order, reads just those sequences.
  sub = descriptor_io.read_descriptor_folder(root, descs.sequences[::-2])
  assert np.array_equal(sub.descs[:7], descs.descs[8:15])


def test_parser_agrees_with_slow_reference_on_varied_formatting(tmp_path):
  rng = np.random.default_rng(1)
  values = rng.standard_normal((9, 5)) * 10.0 ** rng.integers(-6, 6, (9, 5))
  lines = []
  for r, row in enumerate(values):
    cells = [("%.18e", "%.6f", "%g", "%.3E")[(r + c) % 4] % v for c, v in enumerate(row)]
    lines.append(" , ".join(cells) if r % 3 == 0 else ",".join(cells))
  path = tmp_path / "ref.csv"
  path.write_bytes(("\r\n".join(lines[:4]) + "\r\n\n" + "\n".join(lines[4:]) + "\n").encode())
  assert np.array_equal(descriptor_io.read_descriptor_file(path), _reference_read(path))
  path.write_text("\n".join(";".join(c.strip() for c in line.split(",")) for line in lines))
  assert np.array_equal(descriptor_io.read_descriptor_file(path), _reference_read(path))


def test_parallel_read_equals_serial(tmp_path):
  descs = _descs(seed=2, counts=(4, 6, 2, 5))
  descriptor_io.write_descriptor_folder(descs, tmp_path / "d")
  serial = descriptor_io.read_descriptor_folder(tmp_path / "d", descs.sequences, workers=1)
  parallel = descriptor_io.read_descriptor_folder(tmp_path / "d", descs.sequences, workers=2)
  assert np.array_equal(serial.descs, parallel.descs)
  assert np.array_equal(serial.offsets, parallel.offsets)


def _export(tmp_path):
  descs = _descs()
  root = tmp_path / "export"
  descriptor_io.write_descriptor_folder(descs, root)
  return descs, root


def _edit(path, line, new):
  lines = path.read_text().splitlines()
  lines[line - 1] = new
  path.write_text("\n".join(lines) + "\n")


def test_nan_and_inf_name_file_line_and_column(tmp_path):
  descs, root = _export(tmp_path)
  path = root / descs.sequences[1] / "h3.csv"
  _edit(path, 2, "0.5,1,2,nan,4,5")
  with pytest.raises(DescriptorError, match=r"h3.csv: line 2, column 4: expected a finite "
                                            r"number, found nan"):
    descriptor_io.read_descriptor_folder(root, descs.sequences)
  path.write_text("\n" + "\n".join(["1,2,3,4,5,6"] * 2 + ["1,2,3,4,5,-inf"]) + "\n")
  with pytest.raises(DescriptorError, match=r"line 4, column 6: .*found -inf"):
    descriptor_io.read_descriptor_file(path)


def test_row_count_mismatch_names_expected_and_found(tmp_path):
  descs, root = _export(tmp_path)
  path = root / descs.sequences[2] / "t5.csv"
  lines = path.read_text().splitlines()
  path.write_text("\n".join(lines[:-1]) + "\n")
  with pytest.raises(DescriptorError, match=r"t5.csv: expected 7 rows .*as in ref.csv\), found 6"):
    descriptor_io.read_descriptor_folder(root, descs.sequences)
  path.write_text("\n".join(lines + lines[:1]) + "\n")
  with pytest.raises(DescriptorError, match=r"t5.csv: expected 7 rows .* found 8"):
    descriptor_io.read_descriptor_folder(root, descs.sequences)


def test_dimension_mismatches(tmp_path):
  descs, root = _export(tmp_path)
  path = root / descs.sequences[0] / "e1.csv"
  path.write_text("\n".join(",".join(["1"] * 5) for _ in range(5)) + "\n")
  with pytest.raises(DescriptorError, match=r"e1.csv: expected 6-d descriptors \(as in ref.csv\), "
                                            r"found 5-d"):
    descriptor_io.read_descriptor_folder(root, descs.sequences)
  other = _descs(counts=(2,), dim=4)
  other = types.DescriptorSet(("v_other",), other.offsets, other.descs)
  descriptor_io.write_descriptor_folder(other, tmp_path / "o")
  os.rename(tmp_path / "o" / "v_other", root / "v_other")
  with pytest.raises(DescriptorError, match=r"v_other.*expected 6-d descriptors \(as in sequence "
                                            r"'v_s1'\), found 4-d"):
    descriptor_io.read_descriptor_folder(root, ("v_s1", "v_other"))


def test_ragged_rows_and_non_numeric_cells(tmp_path):
  descs, root = _export(tmp_path)
  path = root / descs.sequences[0] / "ref.csv"
  _edit(path, 3, "1,2,3,4,5")
  with pytest.raises(DescriptorError, match=r"ref.csv: line 3: expected 6 values separated by "
                                            r"',' .*found 5"):
    descriptor_io.read_descriptor_folder(root, descs.sequences)
  _edit(path, 3, "1,2,3,abc,5,6")
  with pytest.raises(DescriptorError, match=r"line 3, column 4: expected a number, found 'abc'"):
    descriptor_io.read_descriptor_folder(root, descs.sequences)
  _edit(path, 3, "1,2,3,,5,6")
  with pytest.raises(DescriptorError, match=r"line 3, column 4: expected a number, found ''"):
    descriptor_io.read_descriptor_file(path)
  path.write_text("1 2 3\n4 5 6\n")
  with pytest.raises(DescriptorError, match="check the delimiter|expected a number"):
    descriptor_io.read_descriptor_file(path)
  path.write_text("1\n2\n")
  with pytest.raises(DescriptorError, match="1 column per line \\(check the delimiter\\)"):
    descriptor_io.read_descriptor_file(path)
  path.write_text("\n")
  with pytest.raises(DescriptorError, match="found an empty file"):
    descriptor_io.read_descriptor_file(path)


def test_missing_folders_and_files_are_listed_before_parsing(tmp_path):
  descs, root = _export(tmp_path)
  with pytest.raises(DescriptorError, match=r"missing 1 of 4: i_zz"):
    descriptor_io.read_descriptor_folder(root, descs.sequences + ("i_zz",))
  os.remove(root / descs.sequences[1] / "e2.csv")
  os.remove(root / descs.sequences[2] / "t1.csv")
  (root / descs.sequences[0] / "ref.csv").write_text("garbage that is never parsed\n")
  with pytest.raises(DescriptorError, match=r"missing 2: v_s1/e2.csv, i_s2/t1.csv"):
    descriptor_io.read_descriptor_folder(root, descs.sequences)
  with pytest.raises(DescriptorError, match="descriptor folder not found"):
    descriptor_io.read_descriptor_folder(tmp_path / "nope", descs.sequences)


def test_write_is_all_or_nothing(tmp_path, monkeypatch):
  descs = _descs()
  root = tmp_path / "export"
  bad_values = descs.descs.copy()
  bad_values[6, 4, 2] = np.inf
  bad = types.DescriptorSet(descs.sequences, descs.offsets, bad_values)
  with pytest.raises(DescriptorError, match=r"sequence 'v_s1', image e4, row 1, value 2: "
                                            r"expected a finite number, found inf"):
    descriptor_io.write_descriptor_folder(bad, root)
  assert os.listdir(tmp_path) == []

  calls = []

  def dies_late(values, delimiter):
    calls.append(1)
    if len(calls) == 20:
      raise KeyboardInterrupt
    return "1,2\n" * len(values)
  monkeypatch.setattr(descriptor_io, "_file_text", dies_late)
  with pytest.raises(KeyboardInterrupt):
    descriptor_io.write_descriptor_folder(descs, root)
  assert os.listdir(tmp_path) == []
  monkeypatch.undo()

  descriptor_io.write_descriptor_folder(descs, root)
  with pytest.raises(FileExistsError, match="already exists"):
    descriptor_io.write_descriptor_folder(descs, root)
  other = _descs(seed=5)
  descriptor_io.write_descriptor_folder(other, root, overwrite=True)
  assert np.array_equal(descriptor_io.read_descriptor_folder(root, other.sequences).descs,
                        other.descs)
  assert os.listdir(tmp_path) == ["export"]
