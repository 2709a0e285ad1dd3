"""The semi-supervised methods, one module each, and the registry that maps config.method to them.

A method is a `base.Method`: what it needs (an EMA teacher, two views, labeled rows only, the
method-specific config fields it reads) and its loss terms. ALC (alc.py) wraps any of them. To
add a method: a module here with a `base.Method` subclass and one line in `_ALL` below;
configs/common.py makes its rows (ROW, ROW_alc, ...) from this registry, and settings of its own
go in configs/default.py (named in its `SETTINGS`), with their checks in alc_jax/config_lib.py.
"""

from alc_jax.methods import alc, base
from alc_jax.methods.alc import WithALC
from alc_jax.methods.fixmatch import FixMatch
from alc_jax.methods.mean_teacher import MeanTeacher
from alc_jax.methods.pi_model import PiModel
from alc_jax.methods.pseudo_label import PseudoLabel
from alc_jax.methods.sntg import SNTG
from alc_jax.methods.supervised import Supervised
from alc_jax.methods.vat import VAT
from alc_jax.methods.vat_entmin import VATEntMin

Method = base.Method
loss_fn = base.loss_fn
fields_read = base.fields_read

_ALL = (Supervised(), PseudoLabel(), PiModel(), MeanTeacher(), SNTG(), VAT(), VATEntMin(),
        FixMatch())
REGISTRY = {method.name: method for method in _ALL}
NAMES = tuple(REGISTRY)  # Every valid config.method: the paper's order of Table 2, then FixMatch.
# The models a run may evaluate and save: the student and the methods' `ema_model`s.
EVALUATED_MODELS = ('student',) + tuple(dict.fromkeys(method.ema_model for method in _ALL))


def all_settings(config):
  """Every method-specific config field: those some method (or ALC) reads and others ignore."""
  return tuple(dict.fromkeys([field for method in _ALL for field in method.SETTINGS]
                             + list(alc.all_settings(config)) + list(base.VIEW_SETTINGS)))


def get(name: str) -> base.Method:
  """The method registered as `name` (config.method)."""
  if name not in REGISTRY:
    raise KeyError(f'unknown method {name!r}; the methods are {", ".join(NAMES)}')
  return REGISTRY[name]


def create(config) -> base.Method:
  """The method of `config`: config.method, wrapped in ALC when config.alc.enabled."""
  method = get(config.method)
  return WithALC(method) if config.alc.enabled else method
