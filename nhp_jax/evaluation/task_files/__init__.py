"""HPatches task definitions: read the official CSV files, or generate them as the benchmark does.

Verification needs three pair files per split, retrieval a query and a
distractor list. `load_tasks` takes the official files when the user has
them (the official retrieval lists of the six official splits ship with the
package), else generates them for the dataset at hand with the benchmark's
own draw stream and caches them.

Submodules, each importing only those above it:
  validate  checks of task-file cells (integers, sequence names, ranges, repeats).
  csv_io    the official CSV format: file names, headers, reading, writing.
  generate  the benchmark's generators reproduced (`generate_verification`,
            `generate_retrieval`) and the list sizes for a dataset.
  cache     the cache of generated files (`.npz` plus official-format CSVs).
  load      `load_tasks`: official, vendored or generated files for a split.

This package file re-exports the names the rest of the code uses.
"""

from nhp_jax.evaluation.task_files.cache import default_cache_dir
from nhp_jax.evaluation.task_files.csv_io import (
    PAIR_FILES, RETRIEVAL_FILES, VENDORED_DIR, pair_file_text, read_pair_file,
    read_retrieval_file, retrieval_file_text)
from nhp_jax.evaluation.task_files.generate import (
    OFFICIAL_N_DISTRACTORS, OFFICIAL_N_PAIRS, OFFICIAL_N_QUERIES, generate_retrieval,
    generate_verification, retrieval_sizes, textured)
from nhp_jax.evaluation.task_files.load import FILE_BENCHMARKS, load_tasks

__all__ = [
    "FILE_BENCHMARKS", "OFFICIAL_N_DISTRACTORS", "OFFICIAL_N_PAIRS", "OFFICIAL_N_QUERIES",
    "PAIR_FILES", "RETRIEVAL_FILES", "VENDORED_DIR", "default_cache_dir", "generate_retrieval",
    "generate_verification", "load_tasks", "pair_file_text", "read_pair_file",
    "read_retrieval_file", "retrieval_file_text", "retrieval_sizes", "textured",
]
