"""A user's own semi-supervised data set: labeled/ + unlabeled/ folders and x_labeled .npz files
(alc_jax/data/labeled_folder.py, npz_files.py, image_files.py, decoded_cache.py), their label
splits (splits.given_label_split), the pipeline around them, and runs without a test set."""

import hashlib
import json
import os
import shutil

import jax
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P
from PIL import Image

from alc_jax import config_lib, reporting, train
from alc_jax.data import DataError, datasets, decoded_cache, labeled_folder, pipeline, splits
from tests.conftest import make_tiny_images, tiny_config


def _save(path, pixels, mode=None, **kwargs):
  """Writes uint8 (H, W, C) or (H, W) pixels as an image file (the extension picks the format)."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  pixels = pixels[..., 0] if pixels.ndim == 3 and pixels.shape[-1] == 1 else pixels
  Image.fromarray(pixels, mode).save(path, **kwargs)


def _folder(root, labeled, unlabeled=0, test=None, validation=None, size=(16, 16), seed=0):
  """root/labeled/<class>/, root/unlabeled/ (nested), root/test/, root/validation/ of random RGB
  images of `size` (width, height); `labeled`, `test`, `validation`: {class: count}.
  Returns {split: [pixels in the order the loader sorts them]}."""
  rng = np.random.default_rng(seed)
  written = {}
  for split, counts in (('labeled', labeled), ('test', test), ('validation', validation)):
    for name, count in (counts or {}).items():
      os.makedirs(root / split / name, exist_ok=True)
      for i in range(count):
        pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        _save(str(root / split / name / f'{i:03d}.png'), pixels)
        written.setdefault(split, []).append(pixels)
  if unlabeled is not None:
    os.makedirs(root / 'unlabeled', exist_ok=True)
  for i in range(unlabeled or 0):
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    _save(str(root / 'unlabeled' / f'part{i % 2}' / 'deeper' / f'{i:03d}.png'), pixels)
  return written


def _config(root, **kwargs):
  config = {'name': 'folder', 'path': str(root), 'data_dir': '', 'zca': False, 'image_size': 0,
            'skip_unreadable': False, 'cache_dir': ''}
  config.update(kwargs)
  return config


def _create(config, seeds=(0,)):
  mesh = jax.make_mesh((1,), ('data',), devices=jax.devices()[:1])
  return pipeline.create_pipeline(config, seeds, NamedSharding(mesh, P(None, 'data')),
                                  NamedSharding(mesh, P('data')), config.eval_batch_size)


def _folder_config(root, **overrides):
  """The tiny test config on an image folder, every given label kept."""
  return tiny_config(str(root), **{'dataset.name': 'folder', 'dataset.num_labels': -1,
                                   **overrides})


# --- Layouts ----------------------------------------------------------------------------------


def test_folder_layout_with_uneven_classes_nested_unlabeled_and_partial_eval_sets(tmp_path):
  written = _folder(tmp_path, {'cat': 2, 'dog': 5, 'emu': 1}, unlabeled=7, test={'dog': 3},
                    validation={'cat': 1, 'emu': 2})
  (tmp_path / 'labeled' / 'dog' / 'notes.txt').write_text('ignored')
  ds = datasets.load_dataset(_config(tmp_path))
  assert ds.given_split and ds.class_names == ('cat', 'dog', 'emu') and ds.num_classes == 3
  assert ds.x_train.shape == (15, 16, 16, 3) and ds.image_shape == (16, 16, 3)
  np.testing.assert_array_equal(ds.y_train, [0, 0, 1, 1, 1, 1, 1, 2] + [-1] * 7)
  np.testing.assert_array_equal(ds.x_train[:8], np.stack(written['labeled']))
  np.testing.assert_array_equal(ds.x_test, np.stack(written['test']))
  np.testing.assert_array_equal(ds.y_test, [1, 1, 1])
  np.testing.assert_array_equal(ds.y_validation, [0, 2, 2])


def test_npz_semi_supervised_layout(tmp_path):
  rng = np.random.default_rng(0)
  x = rng.integers(0, 256, (40, 8, 8), dtype=np.uint8)
  path = tmp_path / 'mine.npz'
  np.savez(path, x_labeled=x[:7], y_labeled=[0, 0, 0, 0, 1, 2, 2], x_unlabeled=x[7:30],
           x_validation=x[30:34], y_validation=[2, 1, 0, 0], class_names=['ant', 'bee', 'cow'])
  ds = datasets.load_dataset({'name': 'npz', 'path': str(path)})
  assert ds.given_split and ds.x_test is None and ds.num_test == 0
  assert ds.x_train.shape == (30, 8, 8, 1) and ds.class_names == ('ant', 'bee', 'cow')
  np.testing.assert_array_equal(ds.y_train, [0, 0, 0, 0, 1, 2, 2] + [-1] * 23)
  np.testing.assert_array_equal(ds.x_validation[..., 0], x[30:34])


@pytest.mark.parametrize('arrays,message', [
    ({'x_validation': 1}, 'lacks the key(s) y_validation'),
    ({'x_train': 1, 'y_train': 1}, 'mixes the two layouts'),
    ({'class_names': ['a', 'b', 'c', 'd']}, 'classes [3] never appear in y_labeled'),
    ({'x_unlabeled': np.zeros((3, 9, 8), np.uint8)}, 'x_unlabeled images are (9, 8, 1)'),
    ({'x_test': 1, 'y_test': [5, 0]}, 'y_test has label 5, out of range'),
])
def test_npz_semi_supervised_layout_rejects_bad_input(tmp_path, arrays, message):
  x = np.random.default_rng(0).integers(0, 256, (10, 8, 8), dtype=np.uint8)
  data = {'x_labeled': x[:4], 'y_labeled': [0, 1, 2, 2], 'x_unlabeled': x[4:]}
  data.update({k: (x[:2] if isinstance(v, int) else v) for k, v in arrays.items()})
  if 'y_train' in data:
    data['y_train'] = [0, 1]
  path = tmp_path / 'bad.npz'
  np.savez(path, **data)
  with pytest.raises(DataError) as error:
    datasets.load_dataset({'name': 'npz', 'path': str(path)})
  assert message in str(error.value) and str(path) in str(error.value)


# --- Label splits, priors, batches ------------------------------------------------------------


def test_pipeline_keeps_every_given_label_and_takes_the_prior_from_it(tmp_path):
  _folder(tmp_path, {'a': 3, 'b': 9, 'c': 1, 'd': 2}, unlabeled=20, test={'a': 2, 'c': 2})
  data = _create(_folder_config(tmp_path), seeds=(0, 1))
  assert data.class_names == ('a', 'b', 'c', 'd') and data.image_shape == (16, 16, 3)
  assert data.eval_names == ('test',) and data.num_train == 35
  for split in data.splits:  # Every run: all 15 given labels, none held out.
    np.testing.assert_array_equal(split.labeled, np.arange(15))
    np.testing.assert_array_equal(split.unlabeled, np.arange(15, 35))
  np.testing.assert_allclose(data.priors, [[3 / 15, 9 / 15, 1 / 15, 2 / 15]] * 2)


def test_stratified_subset_is_seeded_and_leaves_the_rest_unlabeled():
  labels = np.concatenate([np.repeat([0, 1, 2], [30, 10, 5]), np.full(20, -1)])
  np.random.default_rng(0).shuffle(labels)
  split = splits.given_label_split(labels, 3, num_labels=9, seed=4)
  np.testing.assert_array_equal(np.bincount(labels[split.labeled], minlength=3), [5, 2, 2])
  assert len(split.unlabeled) == 65 - 9 and split.validation.size == 0
  same = splits.given_label_split(labels, 3, num_labels=9, seed=4)
  other = splits.given_label_split(labels, 3, num_labels=9, seed=5)
  np.testing.assert_array_equal(split.labeled, same.labeled)
  assert not np.array_equal(split.labeled, other.labeled)
  # Uneven counts, not a multiple of the classes: one per class, the rest by class share.
  for num_labels in (3, 4, 13, 44, 45):
    counts = np.bincount(labels[splits.given_label_split(labels, 3, num_labels).labeled])
    assert counts.sum() == num_labels and counts.min() >= 1 and np.all(counts <= [30, 10, 5])
  held = splits.given_label_split(labels, 3, validation_size=6, seed=1)
  np.testing.assert_array_equal(np.bincount(labels[held.validation], minlength=3), [4, 1, 1])
  assert len(held.labeled) == 39 and not np.intersect1d(held.labeled, held.validation).size


def test_a_subset_through_the_pipeline_and_a_too_large_one_refused(tmp_path):
  _folder(tmp_path, {'a': 6, 'b': 3}, unlabeled=4, test={'a': 1})
  data = _create(_folder_config(tmp_path, **{'dataset.num_labels': 4}))
  assert len(data.splits[0].labeled) == 4 and len(data.splits[0].unlabeled) == 9 - 4 + 4
  for bad, fragment in ((10, 'num_labels=10 is out of range: the labeled set holds 9 images'),
                        (1, 'num_labels=1 is out of range')):
    with pytest.raises(DataError) as error:
      _create(_folder_config(tmp_path, **{'dataset.num_labels': bad}))
    assert fragment in str(error.value) and str(tmp_path) in str(error.value)


def test_batches_hold_labeled_batch_size_labeled_rows_from_a_smaller_labeled_set(tmp_path):
  _folder(tmp_path, {'a': 1, 'b': 2}, unlabeled=30, test={'a': 1})
  data = _create(_folder_config(tmp_path, labeled_batch_size=8))  # 8 labeled rows from 3 images.
  with data.train_batches(0) as batches:
    for _ in range(3):
      batch = next(batches)
      labeled = np.asarray(batch['labeled'])[0]
      labels = np.asarray(batch['label'])[0]
      assert labeled.sum() == 8 and np.all(labels[labeled] >= 0) and np.all(labels[~labeled] == -1)


# --- Sizes, modes, resizing -------------------------------------------------------------------


def test_mixed_sizes_and_modes_become_the_most_common_labeled_size_in_rgb(tmp_path, capsys):
  red = np.zeros((8, 10, 3), np.uint8)
  red[..., 0] = 200
  for i in range(3):
    _save(str(tmp_path / 'labeled' / 'a' / f'{i}.png'), red)  # 10x8 (width x height) RGB.
  _save(str(tmp_path / 'labeled' / 'b' / 'gray.png'), np.full((8, 10), 90, np.uint8), 'L')
  _save(str(tmp_path / 'labeled' / 'b' / 'big.webp'), np.full((30, 30, 3), 50, np.uint8),
        lossless=True)
  rgba = np.concatenate([red[:4, :4], np.full((4, 4, 1), 0, np.uint8)], axis=-1)
  _save(str(tmp_path / 'unlabeled' / 'rgba.png'), rgba, 'RGBA')  # Alpha dropped, RGB kept.
  # 16-bit: 32896 = 128 * 257 scales to 128 (PIL's own conversion would clip it to 255).
  _save(str(tmp_path / 'unlabeled' / 'wide.png'), np.full((8, 10), 32896, np.uint16))
  _save(str(tmp_path / 'unlabeled' / '.thumbnail.png'), red)  # Hidden: not an image of the set.
  Image.new('CMYK', (10, 8), (0, 255, 255, 0)).save(tmp_path / 'unlabeled' / 'cmyk.jpg')
  Image.new('P', (10, 8), 0).save(tmp_path / 'unlabeled' / 'palette.bmp')
  _save(str(tmp_path / 'unlabeled' / 'la.png'),
        np.stack([np.full((8, 10), 30, np.uint8)] * 2, -1), 'LA')
  ds = datasets.load_dataset(_config(tmp_path))
  assert 'converted to 10x8 RGB: the most common size in labeled/, 80%' in capsys.readouterr().out
  assert ds.x_train.shape == (10, 8, 10, 3)
  np.testing.assert_array_equal(ds.x_train[0], red)
  np.testing.assert_array_equal(ds.x_train[3], np.full((8, 10, 3), 50))  # 30x30 -> 10x8.
  np.testing.assert_array_equal(ds.x_train[4], np.full((8, 10, 3), 90))  # L -> RGB.
  unlabeled = dict(zip(['cmyk', 'la', 'palette', 'rgba', 'wide'], ds.x_train[5:]))
  np.testing.assert_array_equal(unlabeled['rgba'], np.broadcast_to([200, 0, 0], (8, 10, 3)))
  np.testing.assert_array_equal(unlabeled['wide'], 128)  # Scaled, not clipped.
  np.testing.assert_array_equal(unlabeled['la'], 30)
  assert np.all(np.abs(unlabeled['cmyk'].astype(int) - [255, 0, 0]) <= 3)  # JPEG rounding.


def test_equally_common_sizes_go_to_the_larger_and_hidden_folders_are_no_class(tmp_path, capsys):
  for i in range(2):
    _save(str(tmp_path / 'labeled' / 'a' / f'{i}.png'), np.full((8, 10, 3), 10, np.uint8))
    _save(str(tmp_path / 'labeled' / 'b' / f'{i}.png'), np.full((12, 6, 3), 20, np.uint8))
  # A notebook's checkpoint folder is not a class (nor its images labeled ones).
  _save(str(tmp_path / 'labeled' / '.ipynb_checkpoints' / 'x.png'), np.zeros((8, 10, 3), np.uint8))
  ds = datasets.load_dataset(_config(tmp_path))
  assert ds.class_names == ('a', 'b') and ds.num_classes == 2
  # 10x8 and 6x12 are as common: the larger (80 pixels against 72) is kept.
  assert ds.x_train.shape == (4, 8, 10, 3)
  assert 'converted to 10x8 RGB: the most common size in labeled/, 50%' in capsys.readouterr().out


def test_exif_orientation_turns_both_the_size_and_the_pixels(tmp_path):
  # A photo stored sideways (10 wide, 8 high) with EXIF orientation 6: shown turned 90 degrees
  # clockwise, 8 wide and 10 high. The set's size and the pixels are the image as shown.
  stored = np.random.default_rng(0).integers(0, 256, (8, 10, 3), dtype=np.uint8)
  exif = Image.Exif()
  exif[0x0112] = 6  # Orientation.
  _save(str(tmp_path / 'labeled' / 'a' / '0.png'), stored, exif=exif)
  _save(str(tmp_path / 'unlabeled' / '0.png'), np.rot90(stored, -1))
  ds = datasets.load_dataset(_config(tmp_path))
  assert ds.x_train.shape == (2, 10, 8, 3)
  np.testing.assert_array_equal(ds.x_train[0], np.rot90(stored, -1))
  np.testing.assert_array_equal(ds.x_train[1], ds.x_train[0])


def test_a_grayscale_labeled_set_and_an_explicit_image_size(tmp_path):
  source = np.random.default_rng(0).integers(0, 256, (12, 20), dtype=np.uint8)
  _save(str(tmp_path / 'labeled' / 'a' / '0.png'), source, 'L')
  _save(str(tmp_path / 'unlabeled' / '0.png'), np.stack([source] * 3, -1))  # RGB -> L.
  ds = datasets.load_dataset(_config(tmp_path, image_size=6))
  assert ds.x_train.shape == (2, 6, 6, 1)
  expected = np.asarray(Image.fromarray(source).resize((6, 6), Image.Resampling.BICUBIC))
  np.testing.assert_array_equal(ds.x_train[0, ..., 0], expected)
  np.testing.assert_array_equal(ds.x_train[1], ds.x_train[0])


# --- The decoded-image cache ------------------------------------------------------------------


def _entries(folder, split):
  return sorted(p.name for p in folder.glob(f'*{split}-*.npy'))


def test_cache_hit_on_rerun_and_a_new_entry_when_files_or_size_change(tmp_path, capsys):
  root = tmp_path / 'data'
  _folder(root, {'a': 2, 'b': 2}, unlabeled=6, test={'a': 1})
  first = datasets.load_dataset(_config(root))
  out = capsys.readouterr().out
  assert 'Decoding 6 images of unlabeled/' in out and 'images/s' in out
  cache = root / decoded_cache.CACHE_FOLDER
  before = _entries(cache, 'unlabeled')
  assert len(before) == 1 and not list(cache.glob('*.tmp'))
  again = datasets.load_dataset(_config(root))
  out = capsys.readouterr().out
  assert 'Decoding' not in out and 'unlabeled/: 6 decoded images read from the cache' in out
  np.testing.assert_array_equal(again.x_train, first.x_train)
  np.testing.assert_array_equal(again.x_test, first.x_test)
  # Replacing one unlabeled image invalidates that folder's entry only.
  changed = next((root / 'unlabeled').rglob('*.png'))
  _save(str(changed), np.zeros((16, 16, 3), np.uint8))
  os.utime(changed, ns=(1, 1))
  third = datasets.load_dataset(_config(root))
  out = capsys.readouterr().out
  assert 'Decoding 6 images of unlabeled/' in out and 'Decoding 4 images of labeled/' not in out
  assert (third.x_train[4:].max(axis=(1, 2, 3)) == 0).any()
  assert _entries(cache, 'unlabeled') != before
  assert len(_entries(cache, 'unlabeled')) == 1  # The stale entry is gone.
  datasets.load_dataset(_config(root, image_size=12))
  assert 'Decoding 4 images of labeled/' in capsys.readouterr().out
  # Touching a file (same bytes, a new modification time) is a change too.
  os.utime(next((root / 'labeled').rglob('*.png')), ns=(2, 2))
  datasets.load_dataset(_config(root, image_size=12))
  assert 'Decoding 4 images of labeled/' in capsys.readouterr().out


def test_cache_falls_back_when_beside_the_data_cannot_be_written(tmp_path, capsys):
  root = tmp_path / 'data'
  _folder(root, {'a': 1, 'b': 1}, unlabeled=3)
  (root / decoded_cache.CACHE_FOLDER).write_text('a file where the cache folder would go')
  elsewhere = tmp_path / 'cache'
  datasets.load_dataset(_config(root, cache_dir=str(elsewhere)))
  assert len(_entries(elsewhere, 'unlabeled')) == 1
  capsys.readouterr()
  datasets.load_dataset(_config(root, cache_dir=str(elsewhere)))
  assert 'read from the cache' in capsys.readouterr().out


def test_data_roots_sharing_a_fallback_cache_keep_their_own_entries(tmp_path, capsys):
  # Two folders laid out alike (the same split and file names) cached in one place: neither's
  # entry replaces the other's.
  elsewhere = tmp_path / 'cache'
  roots = [tmp_path / 'first', tmp_path / 'second']
  for seed, root in enumerate(roots):
    _folder(root, {'a': 1, 'b': 1}, unlabeled=3, seed=seed)
    (root / decoded_cache.CACHE_FOLDER).write_text('a file where the cache folder would go')
  loaded = [datasets.load_dataset(_config(root, cache_dir=str(elsewhere))) for root in roots]
  capsys.readouterr()
  assert len(_entries(elsewhere, 'unlabeled')) == 2
  for root, first in zip(roots, loaded):
    again = datasets.load_dataset(_config(root, cache_dir=str(elsewhere)))
    assert 'Decoding' not in capsys.readouterr().out
    np.testing.assert_array_equal(again.x_train, first.x_train)


def test_a_failed_cache_write_leaves_nothing_behind(tmp_path, capsys, monkeypatch):
  _folder(tmp_path, {'a': 1, 'b': 1}, unlabeled=3)

  def full_disk(file, array, allow_pickle):
    file.write(b'half an array')
    raise OSError(28, 'No space left on device')

  monkeypatch.setattr(decoded_cache.np, 'save', full_disk)
  monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'xdg'))
  ds = datasets.load_dataset(_config(tmp_path))
  assert ds.x_train.shape == (5, 16, 16, 3)
  assert 'Could not cache the decoded images' in capsys.readouterr().out
  for folder in (tmp_path / decoded_cache.CACHE_FOLDER, tmp_path / 'xdg' / 'alc_jax'):
    assert not list(folder.iterdir()), list(folder.iterdir())


# --- Unreadable files and other bad input -----------------------------------------------------


def test_a_dangling_link_and_a_name_that_is_not_utf8_are_data_not_tracebacks(tmp_path, capsys):
  """A link to a removed file is an unreadable image (skipped with skip_unreadable); a file name
  in another encoding (an old zip's Latin-1) is read like any other."""
  _folder(tmp_path, {'a': 2, 'b': 2}, unlabeled=4)
  latin1 = os.path.join(os.fsencode(tmp_path / 'labeled' / 'a'), b'caf\xe9.png')
  _save(os.fsdecode(latin1), np.full((16, 16, 3), 7, np.uint8))
  os.symlink(tmp_path / 'gone.png', tmp_path / 'unlabeled' / 'dangling.png')
  with pytest.raises(DataError, match='dangling.png'):
    datasets.load_dataset(_config(tmp_path))
  ds = datasets.load_dataset(_config(tmp_path, skip_unreadable=True))
  assert ds.x_train.shape[0] == 9 and (ds.y_train >= 0).sum() == 5
  assert 'Skipped 1 unreadable image(s)' in capsys.readouterr().out


def test_a_folder_that_cannot_be_listed_stops_the_load(tmp_path, monkeypatch):
  """os.walk skips a folder it cannot list: its images vanished without a word."""
  _folder(tmp_path, {'a': 2, 'b': 2}, unlabeled=4)
  locked = str(tmp_path / 'unlabeled' / 'part1')
  scandir = os.scandir

  def fake_scandir(path='.'):
    if os.fspath(path) == locked:  # As for a folder without read permission (not for root).
      raise PermissionError(13, 'Permission denied', locked)
    return scandir(path)

  monkeypatch.setattr(os, 'scandir', fake_scandir)
  with pytest.raises(DataError, match=f'Cannot list the folder {locked}: PermissionError'):
    datasets.load_dataset(_config(tmp_path))


def test_unreadable_images_stop_the_load_or_are_skipped_and_counted(tmp_path, capsys):
  _folder(tmp_path, {'a': 2, 'b': 2}, unlabeled=4)
  bad = tmp_path / 'unlabeled' / 'broken.png'
  bad.write_bytes(b'\x89PNG not really')
  (tmp_path / 'labeled' / 'a' / 'cut.jpg').write_bytes(b'\xff\xd8\xff truncated')
  with pytest.raises(DataError) as error:
    datasets.load_dataset(_config(tmp_path))
  assert 'Cannot read image' in str(error.value) and 'cut.jpg' in str(error.value)
  assert 'skip_unreadable=True' in str(error.value)
  assert not list((tmp_path / decoded_cache.CACHE_FOLDER).glob('labeled-*'))
  ds = datasets.load_dataset(_config(tmp_path, skip_unreadable=True))
  assert ds.x_train.shape[0] == 8 and (ds.y_train >= 0).sum() == 4
  assert 'Skipped 2 unreadable image(s)' in capsys.readouterr().out
  datasets.load_dataset(_config(tmp_path, skip_unreadable=True))  # From the cache: still said.
  assert 'Skipped 2 unreadable image(s)' in capsys.readouterr().out


@pytest.mark.parametrize('make,fragments', [
    (lambda r: os.makedirs(r / 'test' / 'fox'), ["test/ has the class folder(s) ['fox']",
                                                 'labeled/ lacks']),
    (lambda r: os.makedirs(r / 'validation' / 'owl'), ["validation/ has the class folder(s) "
                                                       "['owl']"]),
    (lambda r: _save(str(r / 'labeled' / 'stray.png'), np.zeros((4, 4), np.uint8)),
     ['labeled/stray.png lies in labeled/ itself', 'labeled/<class_name>/']),
    (lambda r: os.makedirs(r / 'labeled' / 'empty'), ["class folder(s) ['empty'] hold no image"]),
    (lambda r: os.makedirs(r / 'train'), ['has both labeled/ and train/']),
])
def test_bad_folders_are_refused_naming_the_fix(tmp_path, make, fragments):
  _folder(tmp_path, {'a': 1, 'b': 1}, unlabeled=2, test={'a': 1})
  make(tmp_path)
  with pytest.raises(DataError) as error:
    datasets.load_dataset(_config(tmp_path))
  for fragment in fragments:
    assert fragment in str(error.value), str(error.value)
  assert not (tmp_path / decoded_cache.CACHE_FOLDER).exists()  # Nothing decoded or cached.


def test_a_pool_larger_than_memory_allows_is_refused_before_decoding(tmp_path, monkeypatch):
  _folder(tmp_path, {'a': 1, 'b': 1}, unlabeled=8)
  monkeypatch.setattr(labeled_folder, 'available_memory', lambda: 10 * 16 * 16 * 3)
  with pytest.raises(DataError) as error:
    datasets.load_dataset(_config(tmp_path))
  message = str(error.value)
  assert 'its 10 images decoded at 16x16 RGB' in message and 'memory available' in message
  assert 'config.dataset.image_size' in message and 'imagenet_1pct' in message
  assert not (tmp_path / decoded_cache.CACHE_FOLDER).exists()


@pytest.mark.parametrize('unlabeled', [0, None])  # An empty unlabeled/, or none at all.
def test_no_unlabeled_images_warns_that_the_run_is_supervised(tmp_path, capsys, unlabeled):
  _folder(tmp_path, {'a': 2, 'b': 1}, unlabeled=unlabeled, test={'a': 1})
  data = _create(_folder_config(tmp_path))
  out = capsys.readouterr().out
  assert 'Warning:' in out and 'gives no unlabeled image' in out and 'the run is supervised' in out
  with data.train_batches(0) as batches:
    assert bool(np.asarray(next(batches)['labeled']).all())  # Whole batches of labeled images.


def test_config_checks_of_the_dataset_fields(tiny_npz):
  with pytest.raises(config_lib.ConfigError, match='every training image of fashion_mnist'):
    config_lib.validate(tiny_config(tiny_npz, **{'dataset.name': 'fashion_mnist',
                                                 'dataset.num_labels': -1}))
  with pytest.raises(config_lib.ConfigError, match='num_labels=0 must be positive, or -1'):
    config_lib.validate(tiny_config(tiny_npz, **{'dataset.num_labels': 0}))
  with pytest.raises(config_lib.ConfigError, match='image_size=0 must be positive for'):
    config_lib.validate(tiny_config(tiny_npz, **{'dataset.name': 'imagenet_1pct',
                                                 'dataset.path': '',
                                                 'dataset.num_labels': 12811}))
  config_lib.validate(tiny_config(tiny_npz, **{'dataset.name': 'folder',
                                               'dataset.num_labels': -1}))


# --- The fully labeled layouts are unchanged --------------------------------------------------


def test_fully_labeled_data_keep_the_splits_they_always_had(tiny_npz):
  labels = np.random.default_rng(0).permutation(np.repeat(np.arange(10), 6000))
  pinned = {  # sha256 of (labeled, unlabeled, validation) drawn before given splits existed.
      (250, 1.0, 0, 0): '3ea2653d628ef6dfcfabb97ac8f60d596b130d370df8eba172908fa96c798ba9',
      (500, 1.0, 5000, 3): '788f5ab64ccdaeeb25575ed9f97d2ab8f742c67fc4d8885ac306955f1cdda5f8',
      (1000, 10.0, 0, 1): 'ffb5e9c1671bef402a4b0788ee18dfb4381fcff997b46234ff9365fed82814ad'}
  for (num_labels, ratio, validation, seed), digest in pinned.items():
    split = splits.make_label_split(labels, 10, num_labels, ratio, validation, seed=seed)
    parts = (split.labeled, split.unlabeled, split.validation)
    assert hashlib.sha256(b''.join(p.tobytes() for p in parts)).hexdigest() == digest
  data = _create(tiny_config(tiny_npz, **{'dataset.validation_size': 8}), seeds=(2,))
  expected = splits.make_label_split(data.dataset.y_train, 4, 40, 1.0, 8, seed=2)
  np.testing.assert_array_equal(data.splits[0].labeled, expected.labeled)
  assert not data.dataset.given_split and data.class_names is None
  with pytest.raises(DataError, match='every training image of .npz. .* is labeled'):
    _create(tiny_config(tiny_npz, **{'dataset.num_labels': -1}))


# --- Runs without a test set ------------------------------------------------------------------


def _write_learnable_folder(root):
  """100 grayscale 16x16 images of 4 classes: 3..6 labeled per class, 20 for validation, the
  rest unlabeled; no test set."""
  x, y = make_tiny_images(100, 4, 16, np.random.default_rng(0))
  names = ['north', 'east', 'south', 'west']
  labeled = np.zeros(4, int)
  for i, (image, label) in enumerate(zip(x, y)):
    if i >= 80:
      split = f'validation/{names[label]}'
    elif labeled[label] < 3 + label:
      split, labeled[label] = f'labeled/{names[label]}', labeled[label] + 1
    else:
      split = 'unlabeled'
    _save(str(root / split / f'{i:03d}.png'), image)


def test_a_run_without_a_test_set_reports_its_validation_accuracy(tmp_path, capsys):
  root = tmp_path / 'data'
  _write_learnable_folder(root)
  config = _folder_config(root, num_train_steps=4, eval_every_steps=2, checkpoint_every_steps=2,
                          log_every_steps=2)
  results = train.train_and_evaluate(config, str(tmp_path / 'run'))
  out = capsys.readouterr().out
  assert 'no test set: this run reports its validation accuracy' in out
  assert 'Final validation accuracy (%): validation_student_accuracy_mean' in out
  assert '| validation acc ' in out  # The progress line.
  assert set(results['final']) >= {'validation_student_accuracy', 'validation_teacher_accuracy'}
  saved = json.loads((tmp_path / 'run' / 'results.json').read_text())
  assert saved['final'] == results['final']
  assert np.load(tmp_path / 'run' / 'similarity.npz')['similarity'].shape == (20, 20)
  # The folder changes, then the same command reruns: refused before any file is written.
  metadata = (tmp_path / 'run' / 'inference.json').read_text()
  _save(str(root / 'unlabeled' / 'new.png'), np.zeros((8, 8, 3), np.uint8))
  with pytest.raises(DataError, match=r'other data than .* \(num_train: 80 -> 81\).*new --workdir'):
    train.train_and_evaluate(config, str(tmp_path / 'run'))
  os.remove(root / 'unlabeled' / 'new.png')
  for split in ('labeled', 'validation'):  # A class renamed: the label order changes.
    os.rename(root / split / 'east', root / split / 'zeta')
  with pytest.raises(DataError, match=r"class_names: \['east', 'north', 'south', 'west'\] -> "
                                      r"\['north', 'south', 'west', 'zeta'\]"):
    train.train_and_evaluate(config, str(tmp_path / 'run'))
  assert (tmp_path / 'run' / 'inference.json').read_text() == metadata
  # Without a checkpoint there is nothing to resume: the changed folder starts the run over.
  shutil.rmtree(tmp_path / 'run' / 'checkpoints')
  train.train_and_evaluate(config, str(tmp_path / 'run'))
  assert 'zeta' in (tmp_path / 'run' / 'inference.json').read_text()


def test_without_test_or_validation_set_the_run_finishes_reporting_no_accuracy(tmp_path, capsys):
  """The end of a run (train._Log.evaluation, train._finish) on a data set with neither set,
  from the initial state: nothing is evaluated, results.json is written, the line says so."""
  root = tmp_path / 'data'
  _folder(root, {'a': 3, 'b': 4}, unlabeled=9)
  exp = train.create_experiment(_folder_config(root))
  assert exp.data.eval_names == ()
  assert 'this run reports no accuracy' in capsys.readouterr().out
  workdir = tmp_path / 'run'
  workdir.mkdir()
  state = exp.initial_state
  log = train._Log(exp, str(workdir), 0)  # pylint: disable=protected-access
  log.evaluation(1, state)
  assert log.progress.last_accuracy is None
  results = train._finish(exp, state, log, 1, 0, str(workdir))  # pylint: disable=protected-access
  log.writer.close()
  assert results['final'] == {} and results['summary'] == {}
  assert json.loads((workdir / 'results.json').read_text())['steps'] == 1
  assert 'reports no accuracy' in capsys.readouterr().out
  assert 'no accuracy' in reporting.final_accuracy_line({}, ())
