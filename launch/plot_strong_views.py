"""A grid of FixMatch strong views (alc_jax/data/randaugment.py) of real images, as a PNG.

  python launch/plot_strong_views.py [OUT.png] [--seed 0] [--views 8]

Rows: a few Fashion-MNIST test images (Debian's IDX files, else TFDS) and a real RGB photo, the
Grace Hopper portrait that ships with matplotlib, downsized to 32x32 with PIL. Columns: the
original, then independent strong views (`strong_augment`, each view its own key). Writes
docs/fixmatch/strong_views.png by default.
"""

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

DEFAULT_OUT = 'docs/fixmatch/strong_views.png'
# Fashion-MNIST test images shown: the first of classes 0 (T-shirt), 1 (trouser), 7 (sneaker) and
# 9 (ankle boot), shapes that show the geometric ops well.
FASHION_MNIST_CLASSES = (0, 1, 7, 9)
PHOTO_SIZE = 32


def load_rows():
  """The rows' original images: [(label, uint8 (H, W, C))], Fashion-MNIST first, then the photo."""
  from matplotlib import cbook  # pylint: disable=g-import-not-at-top
  from PIL import Image  # pylint: disable=g-import-not-at-top

  from alc_jax.data.fashion_mnist import load_fashion_mnist  # pylint: disable=g-import-not-at-top
  _, _, x_test, y_test = load_fashion_mnist('', None)
  rows = [(f'Fashion-MNIST class {c}', x_test[np.flatnonzero(y_test == c)[0]])
          for c in FASHION_MNIST_CLASSES]
  with cbook.get_sample_data('grace_hopper.jpg') as f:
    photo = Image.open(f).convert('RGB').resize((PHOTO_SIZE, PHOTO_SIZE))
  rows.append((f'photo {PHOTO_SIZE}x{PHOTO_SIZE}', np.asarray(photo)))
  return rows


def strong_views(images, num_views, seed):
  """`num_views` strong views of each uint8 (H, W, C) image of `images` (one shape), one batch.

  Returns:
    float32 (len(images), num_views, H, W, C).
  """
  import jax  # pylint: disable=g-import-not-at-top

  from alc_jax.data import randaugment  # pylint: disable=g-import-not-at-top
  images = np.asarray(images, np.float32)
  batch = np.repeat(images, num_views, axis=0)  # Image i's views are rows i * num_views + j.
  views = jax.jit(randaugment.strong_augment)(jax.random.key(seed), batch)
  return np.asarray(views).reshape(images.shape[0], num_views, *images.shape[1:])


def plot_strong_views(out_path, num_views=8, seed=0):
  """Writes the grid to `out_path` (PNG); returns the path."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  rows = load_rows()
  # One batch per image shape (Fashion-MNIST, the photo): one compilation each.
  views = {}
  for shape in dict.fromkeys(image.shape for _, image in rows):
    indices = [i for i, (_, image) in enumerate(rows) if image.shape == shape]
    batch_views = strong_views([rows[i][1] for i in indices], num_views, seed + len(views))
    views.update(zip(indices, batch_views))
  fig, axes = plt.subplots(len(rows), num_views + 1, squeeze=False,
                           figsize=(1.1 * (num_views + 1), 1.15 * len(rows)))
  for r, (label, image) in enumerate(rows):
    for c, view in enumerate([image] + list(views[r].astype(np.uint8))):
      ax = axes[r, c]
      if view.shape[-1] == 1:
        ax.imshow(view[..., 0], cmap='gray', vmin=0, vmax=255, interpolation='nearest')
      else:
        ax.imshow(view, interpolation='nearest')
      ax.set_xticks([])
      ax.set_yticks([])
      if r == 0:
        ax.set_title('original' if c == 0 else f'view {c}', fontsize=8)
    axes[r, 0].set_ylabel(label, fontsize=6)
  fig.suptitle('FixMatch strong augmentation: RandAugment (2 ops, random magnitudes) + Cutout',
               fontsize=9)
  fig.tight_layout()
  os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
  fig.savefig(out_path, dpi=110)
  plt.close(fig)
  return out_path


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('out', nargs='?', default=DEFAULT_OUT, help='the PNG to write')
  p.add_argument('--seed', type=int, default=0)
  p.add_argument('--views', type=int, default=8, help='strong views per image')
  args = p.parse_args(argv)
  print(f'wrote {plot_strong_views(args.out, args.views, args.seed)}')


if __name__ == '__main__':
  main()
