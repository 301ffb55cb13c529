"""The three headline numbers of an evaluation."""

from collections.abc import Mapping
from typing import Any

TASKS = ("verification", "matching", "retrieval")


def headline(results: Mapping[str, Mapping[str, Any]]) -> dict[str, float]:
  """{"verification": x, "matching": y, "retrieval": z}: each task's mAP.

  Args:
    results: {task: the dict its `evaluate_*` returned}; tasks not scored
      are left out of the answer.
  """
  return {task: float(results[task]["mAP"]) for task in TASKS if task in results}
