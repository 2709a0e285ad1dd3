"""The supervised baseline: cross-entropy on labeled images only (every row of its batches)."""

from alc_jax.methods import base


class Supervised(base.Method):
  name = 'supervised'
  label = 'Supervised'
  labeled_only = True  # The pipeline fills whole batches with labeled images.
