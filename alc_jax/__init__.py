"""alc_jax: attention-based label consistency (Chen, Yang & Ling, Neurocomputing 2020) in JAX/Flax.

The pure loss functions (`alc_jax.losses`) are the notebook-level API; `alc_jax.train` holds the
trainer that `python -m alc_jax.main` runs.

Importing the package changes nothing: neither XLA_FLAGS nor JAX's device count (issue 28). The
fastest CPU set-up (alc_jax/cpu_setup.py: convolutions by Eigen, one JAX device per core, where
JAX runs on the CPU and the user has not set them) is applied by the entry points (`python -m
alc_jax.main`, bench/bench.py, the test suite). A notebook or script that uses the library itself
calls it first thing, before anything starts JAX:

  import alc_jax
  alc_jax.cpu_setup.configure()

ALC_JAX_CPU_DEFAULTS=0 turns it off.
"""

# Imported, not called: so that `alc_jax.cpu_setup.configure()` works after `import alc_jax`.
from alc_jax import cpu_setup  # noqa: F401

__version__ = '0.1.0'
