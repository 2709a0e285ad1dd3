"""Input pipelines: datasets in memory or streamed from TFDS, label splits, batch sampling, augmentation."""

from alc_jax.data.augment import augment, normalize
from alc_jax.data.datasets import ArrayDataset, DataError, load_dataset
from alc_jax.data.sampler import BatchSampler, eval_batches, make_train_iterator
from alc_jax.data.splits import LabelSplit, imbalanced_class_counts, make_label_split
