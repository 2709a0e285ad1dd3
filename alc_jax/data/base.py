"""What every data module shares: its errors, reading fields of config.dataset, and the arrays a
loader of an in-memory data set returns."""

import dataclasses
from typing import Any, Optional, Tuple

import numpy as np


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


@dataclasses.dataclass
class ImageArrays:
  """The images and labels of a data set held in memory (alc_jax/data/datasets.py adds the
  statistics).

  Attributes:
    x_train: uint8 (N, H, W, C) training images; C = 1 for grayscale. With `given_split`, the
      labeled images come first.
    y_train: int32 (N,) labels in [0, num_classes); -1 on the images of a given unlabeled set.
    x_test: uint8 (M, H, W, C) test images, or None for a data set without a test set.
    y_test: int32 (M,) labels, or None.
    num_classes: number of classes.
    class_names: the class names, index = label, or None for a data set without names.
    x_validation: uint8 validation images the data set gives (validation/, x_validation), or
      None (config.dataset.validation_size may then hold some out of the training set).
    y_validation: int32 labels of x_validation, or None.
    given_split: whether the data set says itself which training images are labeled (labeled/ +
      unlabeled/ folders, x_labeled + x_unlabeled arrays). False: every training image is
      labeled, and the trainer hides all but config.dataset.num_labels of the labels.
  """
  x_train: np.ndarray
  y_train: np.ndarray
  x_test: Optional[np.ndarray]
  y_test: Optional[np.ndarray]
  num_classes: int
  class_names: Optional[Tuple[str, ...]] = None
  x_validation: Optional[np.ndarray] = None
  y_validation: Optional[np.ndarray] = None
  given_split: bool = False
