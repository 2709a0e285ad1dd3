"""Table 4: ImageNet with 1% of the labels, ResNet-18 (Top-1 and Top-5).

Paper (Sec. 5, 5.5): ResNet-18, batch 240 of which 120 labeled, 400 epochs, SGD with cosine lr
from 0.1, EMA 0.97, w2 = 1 (Sec. 5.1's default); 1% of the training images labeled, the 50k
validation images for testing; trained on 3 GTX 1080 Ti.
The labeled 1% is TFDS' fixed `imagenet2012_subset/1pct` (12,811 images, about 13 per class, not
exactly balanced; see alc_jax/data/imagenet.py): num_labels must be 12,811 (or -1) and
imbalance_ratio 1, as config_lib checks: the subset, not a split seed, decides which images are
labeled.
Silent in the paper (our choices): w1 = 10 (the Mean Teacher reference's ImageNet value), weight
decay 1e-4 (the usual ResNet ImageNet value), 224-pixel crops, on-device flips and 16-pixel
translation plus input noise so that student and teacher see different views. One epoch is one
pass over the 1,281,167 training images (5,338 steps of 240). num_runs must stay 1 (streamed data).
"""

from alc_jax.data import imagenet
from configs import common

ROWS = ('supervised', 'pseudo_label', 'pi_model', 'mean_teacher', 'pi_model_alc',
        'mean_teacher_alc')


def get_config(row='mean_teacher_alc'):
  config = common.experiment('imagenet', imagenet.NUM_LABELED, row)
  config.num_runs = 1
  config.dataset.image_size = 224  # The crops (configs/default.py's 0 is for image folders).
  # Encoded images in each train stream's shuffle buffer (~110 kB each: ~1 GB per stream).
  config.dataset.shuffle_buffer = imagenet.DEFAULT_SHUFFLE_BUFFER
  config.eval_every_steps = 5000  # About once per epoch: evaluating 50k images is not free.
  config.checkpoint_every_steps = 5000
  return config
