"""Literal transcriptions of the HPatches benchmark's task generators (slow reference).

Step for step as `gen_verif` and `gen_retrieval` in the benchmark's
`python/utils/tasks.py`: the global legacy numpy seed 42, one numpy call per
row where the original makes one, the `np.std(p) > 10` test per candidate
patch, and pandas' `drop_duplicates` / `head` / "not in the queries" steps as
plain Python. The global numpy state is restored afterwards so other tests
never see the seed.

Rows come back as tuples of (sequence name, ...) in file order, the way the
CSV files list them.
"""

import contextlib

import numpy as np


@contextlib.contextmanager
def _global_seed(seed):
  saved = np.random.get_state()
  np.random.seed(seed)
  try:
    yield
  finally:
    np.random.set_state(saved)


def gen_verif(test, seq2len, n_pairs):
  """Returns {"pos", "neg_intra", "neg_inter"} -> list of (s1, t1, idx1, s2, t2, idx2)."""
  with _global_seed(42):
    s = np.random.choice(test, int(n_pairs))
    s_n = [seq2len[k] for k in s]
    s_idx = np.array([np.random.choice(np.arange(k), 2, replace=False) for k in s_n])
    s_type = np.array([np.random.choice(np.arange(5), 2, replace=False) for k in s_idx])
    s_inter = np.random.choice(test, int(n_pairs))
    s_n_inter = [seq2len[k] for k in s_inter]
    s_idx_inter = np.array([np.random.randint(k) for k in s_n_inter])
  pos, intra, inter = [], [], []
  for r in range(int(n_pairs)):
    t1, t2 = int(s_type[r, 0]), int(s_type[r, 1])
    i, j = int(s_idx[r, 0]), int(s_idx[r, 1])
    pos.append((str(s[r]), t1, i, str(s[r]), t2, i))
    intra.append((str(s[r]), t1, i, str(s[r]), t2, j))
    inter.append((str(s[r]), t1, i, str(s_inter[r]), t2, int(s_idx_inter[r])))
  return {"pos": pos, "neg_intra": intra, "neg_inter": inter}


def gen_retrieval(test, ref_patches, n_queries, n_distractors):
  """Returns (queries, distractors), each a list of (s, idx).

  Args:
    test: test sequence names in split order.
    ref_patches: {name: (N, H, W) uint8} the `ref` patches of each sequence.
    n_queries, n_distractors: the N_queries / N_distractors arguments.
  """
  seq2len = {k: len(v) for k, v in ref_patches.items()}
  with _global_seed(42):
    s_q = np.random.choice(test, int(n_queries * 4))
    s_q_n = [seq2len[k] for k in s_q]
    s_q_idx = np.array([np.random.randint(k) for k in s_q_n])
    s_d = np.random.choice(test, int(n_distractors * 10))
    s_d_n = [seq2len[k] for k in s_d]
    s_d_idx = np.array([np.random.randint(k) for k in s_d_n])

  def textured(seqs, idxs):
    return [(str(s), int(i)) for s, i in zip(seqs, idxs) if np.std(ref_patches[s][i]) > 10]

  def drop_duplicates(rows):
    seen, out = set(), []
    for row in rows:
      if row not in seen:
        seen.add(row)
        out.append(row)
    return out

  queries = drop_duplicates(textured(s_q, s_q_idx))[:int(n_queries)]
  in_queries = set(queries)
  distractors = [row for row in drop_duplicates(textured(s_d, s_d_idx)) if row not in in_queries]
  return queries, distractors[:int(n_distractors)]
