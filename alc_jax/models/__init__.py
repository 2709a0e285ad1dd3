"""Models: the backbones (backbones.py: CNN-13, WRN-28-2, ResNet-18) and the `Classifier` a run
trains (classifier.py: a backbone plus, for ALC, the attention head). The names below are the
package's API; each is defined in the module named beside it."""

# pylint: disable=g-importing-member
from alc_jax.models.backbones import MODEL_NAMES, create_model, feature_shape  # noqa: F401
from alc_jax.models.backbones import DEFAULT_DROPOUT, WITH_DROPOUT  # noqa: F401
from alc_jax.models.backbones import smallest_input_size  # noqa: F401
from alc_jax.models.classifier import ALC_SCOPES, COMPUTE_DTYPES  # noqa: F401
from alc_jax.models.classifier import Classifier, create_classifier  # noqa: F401
