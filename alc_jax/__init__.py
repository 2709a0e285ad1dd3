"""alc_jax: attention-based label consistency (Chen, Yang & Ling, Neurocomputing 2020) in JAX/Flax.

The pure loss functions (`alc_jax.losses`) are the notebook-level API; `alc_jax.train` holds the
trainer that `python -m alc_jax.main` runs.

Importing the package applies the fastest CPU set-up (alc_jax/cpu_setup.py) where JAX runs on the
CPU and the user has not set it: convolutions by Eigen and one JAX device per core. It must run
before any JAX backend exists, so import alc_jax before running JAX code; ALC_JAX_CPU_DEFAULTS=0
turns it off.
"""

from alc_jax import cpu_setup

cpu_setup.configure()

__version__ = '0.1.0'
