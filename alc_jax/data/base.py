"""What every data module shares: its errors, and reading fields of config.dataset."""

from typing import Any


class DataError(ValueError):
  """The data cannot be used as they are: the message names the file and says what to fix.
  main.py prints it as one line, `Data error: ...`, without a traceback."""


class DataFileNotFoundError(DataError, FileNotFoundError):
  """A data file or folder that the config names does not exist."""


def config_value(config: Any, key: str, default: Any) -> Any:
  """`config.key` for a ConfigDict, a dict or any object; `default` when absent."""
  if isinstance(config, dict):
    return config.get(key, default)
  return getattr(config, key, default)
