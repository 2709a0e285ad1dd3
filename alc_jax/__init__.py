"""alc_jax: attention-based label consistency (Chen, Yang & Ling, Neurocomputing 2020) in JAX/Flax.

The pure loss functions (`alc_jax.losses`) are the notebook-level API; `alc_jax.train` holds the
trainer that `python -m alc_jax.main` runs.
"""

__version__ = '0.1.0'
