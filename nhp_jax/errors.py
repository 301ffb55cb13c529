"""Exceptions of nhp_jax: every user-facing failure names the file, the expected and the found."""


class NhpError(Exception):
  """Base class of the errors nhp_jax raises on bad input or state."""


class DataError(NhpError, ValueError):
  """A dataset file or folder is missing, corrupt or inconsistent."""


class TaskFileError(NhpError, ValueError):
  """A task file (splits.json, verification pairs, retrieval lists) is invalid."""


class DescriptorError(NhpError, ValueError):
  """Descriptors are malformed: NaN/Inf, wrong counts or inconsistent dimensions."""


class ConfigError(NhpError, ValueError):
  """A config field is unknown, of the wrong type or out of range."""


class CheckpointError(NhpError, RuntimeError):
  """A checkpoint is missing, corrupt or was written by another config."""


class NumericsError(NhpError, FloatingPointError):
  """A loss, input or output became NaN or Inf."""
