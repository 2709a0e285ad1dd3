"""Input pipelines: one `Pipeline` object per run (pipeline.py) over data sets held in memory
(datasets.py and the loaders beside it) or streamed from TFDS (imagenet.py); label splits,
batch sampling, normalisation and augmentation. Import the modules (`from alc_jax.data import
augment`); the package re-exports only its errors."""

from alc_jax.data.base import DataError, DataFileNotFoundError  # noqa: F401
