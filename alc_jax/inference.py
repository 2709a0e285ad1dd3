"""Using a trained model: load it from a workdir, read images, predict class probabilities.

A run writes what inference needs into its workdir when it starts (`write_metadata`, called by
alc_jax/train.py), so a workdir alone is enough, even one whose run was interrupted after its
first checkpoint:

  inference.json     image_shape (H, W, C), num_classes, class_names (or null), reported_model
                     ('teacher', 'ema' or 'student'), models (the weights its checkpoints hold) and
                     the run's whole config (the model, the method, num_runs, ...);
  normalization.npz  mean and std (C,) and, with config.dataset.zca, zca (D, D) and zca_mean (D,).

In a notebook (CPU; the training data are never loaded):

  from alc_jax import inference
  model = inference.load('runs/my_run')  # weights='reported' | 'teacher' | 'ema' | 'student'
  probabilities = model.predict(images)  # uint8 (N, H, W, C) -> (N, K)
  model.labels[probabilities.argmax(-1)[0]]
  images = inference.open_images('photos/', model.image_shape)  # a folder, an image or an npz

`weights='reported'` loads the model whose accuracy the run reports as its final one
(results.json's `reported_model`): the EMA model kept in the optimizer state where the method
has one (alc_jax/ema.py: Mean Teacher's 'teacher', FixMatch's 'ema'), else the student. `run=K`
picks one of the `config.num_runs` runs trained side by side. The command-line tools built on
this are alc_jax/predict.py, alc_jax/evaluate.py and alc_jax/export.py.
"""

import dataclasses
import functools
import os
import sys
import time
import zipfile
from typing import Callable, List, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from absl import app, flags, logging
from etils import epath

from alc_jax import checkpointing, cpu_setup, methods, models, reporting, train, workdir_io
from alc_jax.data import DataError, image_files
from alc_jax.data.normalization import Normalization

METADATA_FILE = 'inference.json'
NORMALIZATION_FILE = 'normalization.npz'
FORMAT = 1  # Of inference.json; raised when its meaning changes.
WEIGHTS = ('reported',) + methods.EVALUATED_MODELS  # 'ema': FixMatch's (Method.ema_model).


class InferenceError(ValueError):
  """A workdir, input or choice that inference cannot use; the message (one line) says what to
  do. The command-line tools print it as `Error: ...`, without a traceback."""


def write_metadata(workdir, exp):
  """Writes inference.json and normalization.npz of the run `exp` (a train.Experiment) into
  `workdir`, each atomically; inference.json last, so that its presence means both are whole."""
  norm = jax.device_get(exp.data.normalization)
  arrays = {k: np.asarray(v) for k, v in dataclasses.asdict(norm).items() if v is not None}
  workdir_io.write_npz(os.path.join(workdir, NORMALIZATION_FILE), **arrays)
  workdir_io.write_json(os.path.join(workdir, METADATA_FILE), {
      'format': FORMAT,
      'image_shape': list(exp.data.image_shape),
      'num_classes': exp.data.num_classes,
      'class_names': None if exp.data.class_names is None else list(exp.data.class_names),
      'reported_model': exp.method.reported_model(exp.config),
      'models': list(exp.models),  # The weights a checkpoint holds: student (and teacher or ema).
      'config': exp.config.to_dict(),
      'data': data_fingerprint(exp),
  })


def data_fingerprint(exp):
  """What a resumed run must find again of its data (a user's folder can change between runs):
  the classes in label order, the image shape, and the training and labeled image counts (with
  config.num_epochs the first sets the schedule's length)."""
  data = exp.data
  return {'class_names': None if data.class_names is None else list(data.class_names),
          'num_classes': data.num_classes, 'image_shape': list(data.image_shape),
          'num_train': data.num_train, 'num_labeled': data.num_labeled}


def check_same_data(workdir, exp):
  """Raises DataError when `workdir` holds a run that started on other data than `exp` reads
  now; a workdir without a run, or one from before the fingerprint was recorded, passes. The
  trainer asks only where there is a checkpoint to resume."""
  info = workdir_io.read_json(os.path.join(workdir, METADATA_FILE)) or {}
  before, now = info.get('data'), data_fingerprint(exp)
  if before is None or before == now:
    return
  changed = '; '.join(f'{key}: {before.get(key)} -> {now[key]}' for key in now
                      if before.get(key) != now[key])
  dataset = exp.config.dataset
  raise DataError(
      f'{workdir} holds a run that started on other data than {dataset.path or dataset.name} '
      f'gives now ({changed}): resumed, it would go on with other classes, images or schedule. '
      f'Restore the data it started on to resume it, or use a new --workdir.')


def read_metadata(workdir) -> Tuple[dict, Normalization]:
  """(inference.json's contents, the run's Normalization) of `workdir`; InferenceError when it
  is not the workdir of a run."""
  path = epath.Path(workdir)
  if not path.is_dir():
    raise InferenceError(f'{workdir} does not exist or is not a folder; pass the --workdir of a '
                         'run of alc_jax.main.')
  info = workdir_io.read_json(path / METADATA_FILE)
  if info is None and (path / 'config.json').exists():
    raise InferenceError(
        f'{workdir} holds a run that predates {METADATA_FILE}: rerun its training command '
        '(python -m alc_jax.main with the same --config and --workdir); it writes the file and '
        'resumes from the latest checkpoint (a finished run is not trained further).')
  if info is None:
    raise InferenceError(f'{workdir} is not the workdir of a run of alc_jax.main (it has no '
                         f'{METADATA_FILE}).')
  if info.get('format') != FORMAT:
    raise InferenceError(f'{path / METADATA_FILE} has format {info.get("format")}, this code '
                         f'reads format {FORMAT}: use the alc_jax version that trained the run.')
  with (path / NORMALIZATION_FILE).open('rb') as f, np.load(f) as arrays:
    normalization = Normalization.create(**{k: arrays[k] for k in arrays.files})
  return info, normalization


@dataclasses.dataclass
class Model:
  """One trained network with its normalisation, on the CPU: uint8 images in, probabilities out.

  Attributes:
    module: the models.Classifier.
    variables: {'params', 'batch_stats'} of the loaded weights.
    normalization: the run's Normalization (statistics and ZCA of its training images).
    image_shape: (H, W, C) the network takes.
    class_names: the run's class names (index = label), or None when its data had none.
    weights: 'teacher', 'ema' or 'student', the weights loaded.
    run: which of the run's `num_runs` runs.
    step: the training step of the checkpoint.
    batch_size: images per call of the compiled network.
  """
  module: models.Classifier
  variables: dict
  normalization: Normalization
  image_shape: Tuple[int, int, int]
  class_names: Optional[Tuple[str, ...]]
  weights: str
  run: int
  step: int
  batch_size: int = 256

  def __post_init__(self):
    self._compiled = jax.jit(functools.partial(_probabilities, self.module))

  @property
  def num_classes(self) -> int:
    return self.module.backbone.num_classes

  @property
  def labels(self) -> Tuple[str, ...]:
    """The name of each class: class_names, else the label ids '0', '1', ..."""
    return self.class_names or tuple(str(k) for k in range(self.num_classes))

  def forward(self, images: jax.Array) -> jax.Array:
    """uint8 (N, H, W, C) -> float32 probabilities (N, K); the weights are constants (what
    alc_jax/export.py serialises)."""
    return _probabilities(self.module, self.variables, self.normalization, images)

  def predict(self, images, batch_size: Optional[int] = None) -> np.ndarray:
    """Class probabilities (N, K) of uint8 images (N, H, W, C), or (N, H, W) for grayscale;
    images of another size or channel count are converted first (`fit_images`)."""
    images = fit_images(images, self.image_shape)
    size = batch_size or self.batch_size
    out = [np.zeros((0, self.num_classes), np.float32)]
    for start in range(0, len(images), size):
      chunk = images[start:start + size]
      # Padded to the batch size (a smaller input: to a power of two), so that a few programs
      # serve every input length; rows do not interact in eval mode.
      rows = size if len(chunk) == size else min(size, 1 << (len(chunk) - 1).bit_length())
      padded = np.zeros((rows, *self.image_shape), np.uint8)
      padded[:len(chunk)] = chunk
      probabilities = self._compiled(self.variables, self.normalization, padded)
      out.append(np.asarray(probabilities)[:len(chunk)])
    return np.concatenate(out)


def _probabilities(module, variables, normalization, images):
  # As train.eval_step computes the logits, so that predictions match the run's evaluations.
  logits = module.apply(variables, normalization(images), train=False)[0]
  return jax.nn.softmax(logits.astype(jnp.float32), axis=-1)


def load(workdir, weights: str = 'reported', run: int = 0, batch_size: int = 256) -> Model:
  """The model of the latest checkpoint of `workdir`, on the CPU.

  Args:
    workdir: the --workdir of a run of alc_jax.main.
    weights: 'reported' (the model the run reports as its final one: the EMA model where the
      method keeps one, else the student), 'teacher', 'ema' or 'student'.
    run: which of the run's config.num_runs runs (0 for an ordinary run).
    batch_size: images per call of the compiled network (`Model.predict`).

  Raises:
    InferenceError: not a run's workdir, no checkpoint yet, a `weights` the run has not, a `run`
      out of range, or a checkpoint of another train state than this code builds.
  """
  info, normalization = read_metadata(workdir)
  if weights not in WEIGHTS:
    raise InferenceError(f'weights={weights!r} is not one of {", ".join(WEIGHTS)}.')
  weights = info['reported_model'] if weights == 'reported' else weights
  if weights not in info['models']:
    raise InferenceError(f'the run in {workdir} has no {weights} (it trained '
                         f'{" and ".join(info["models"])}): choose weights='
                         f'{" or weights=".join(info["models"])}.')
  config = ml_collections.ConfigDict(info['config'])
  if not 0 <= run < config.num_runs:
    raise InferenceError(f'run={run} is out of range: the run in {workdir} trained '
                         f'{config.num_runs} run(s), 0..{config.num_runs - 1}.')
  image_shape = tuple(info['image_shape'])
  module = models.create_classifier(config, info['num_classes'])
  state, step = _restore(workdir, _abstract_state(config, module, image_shape,
                                                  info['num_classes']))
  ema_model = next((m for m in info['models'] if m != 'student'), 'teacher')
  params, batch_stats = {n: (p, s) for n, p, s in
                         train.models_to_evaluate(state, ema_model)}[weights]
  variables = jax.tree.map(lambda a: a[run], {'params': params, 'batch_stats': batch_stats})
  cpu = jax.devices('cpu')[0]
  names = info['class_names']
  return Model(module=module, variables=jax.device_put(variables, cpu),
               normalization=jax.device_put(normalization, cpu), image_shape=image_shape,
               class_names=None if names is None else tuple(names), weights=weights, run=run,
               step=step, batch_size=batch_size)


def _abstract_state(config, module, image_shape, num_classes):
  """The shapes and dtypes of the run's stacked train state, built as train.create_experiment
  builds it but under jax.eval_shape (nothing is computed), every leaf on the CPU."""
  method = methods.create(config)
  # The optimizer's state tree does not depend on the schedule's length.
  tx, _ = train.create_optimizer(config, 1, 1, method)
  init = lambda key: train.init_state(key, module, tx, image_shape, jnp.zeros(num_classes))
  keys = jax.random.split(jax.random.key(0), config.num_runs)
  cpu = jax.sharding.SingleDeviceSharding(jax.devices('cpu')[0])
  return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=cpu),
                      jax.eval_shape(jax.vmap(init), keys))


def _restore(workdir, target):
  """(state, step) of the latest checkpoint in `workdir`. Read only: unlike
  checkpointing.Manager it neither creates, cleans nor moves anything, so it may read the
  workdir of a run that is still training."""
  directory = epath.Path(workdir) / checkpointing.FOLDER
  if not workdir_io.is_remote(directory):
    directory = epath.Path(os.path.abspath(directory))  # Orbax needs absolute local paths.
  if directory.is_dir():
    # Nothing is saved, created or deleted: no create, no max_to_keep, no clean-up (orbax's
    # read_only=True would do the same, with a warning on every load).
    manager = ocp.CheckpointManager(
        directory, options=ocp.CheckpointManagerOptions(create=False),
        item_handlers=ocp.StandardCheckpointHandler())
    try:
      step = manager.latest_step()
      if step is not None:
        metadata = manager.item_metadata(step)
        tree = metadata.tree if hasattr(metadata, 'tree') else metadata
        differences = checkpointing.tree_differences(tree, target)
        if differences:
          raise InferenceError(
              f'the checkpoint of step {step} in {workdir} holds another train state than this '
              f'code builds from the run\'s config ({"; ".join(differences[:3])}): use the '
              'alc_jax version that trained the run.')
        return manager.restore(step, args=ocp.args.StandardRestore(target)), step
    finally:
      manager.close()
  raise InferenceError(f'{workdir} has no checkpoint yet: its run saves one every '
                       'config.checkpoint_every_steps steps and at its end; wait for one.')


# --- Reading images ---------------------------------------------------------------------------
# Image files are decoded as the data sets decode theirs (alc_jax/data/image_files.py), so that a
# file the run trained on is predicted from the same pixels.


def _mode(image_shape):
  """The PIL mode of the network's images: 'L' (C = 1) or 'RGB' (C = 3)."""
  channels = image_shape[-1]
  if channels not in (1, 3):
    raise InferenceError(f'the network takes {channels}-channel images: images can only be '
                         f'converted to 1 or 3 channels; pass uint8 arrays of shape '
                         f'{tuple(image_shape)}.')
  return 'L' if channels == 1 else 'RGB'


def fit_images(images, image_shape) -> np.ndarray:
  """uint8 images (N, H, W, C), or (N, H, W) for grayscale, as the network's (N, *image_shape):
  unchanged when they have that shape, else converted by PIL to its mode ('L' or 'RGB') and
  resized with the data sets' filter (image_files.conform, as files are decoded).
  """
  images = np.asarray(images)
  if images.dtype != np.uint8:
    raise InferenceError(
        f'images have dtype {images.dtype}; expected uint8 in [0, 255] (for floats in [0, 1]: '
        '(x * 255).round().astype(np.uint8)).')
  if images.ndim == 3:
    images = images[..., None]
  if images.ndim != 4:
    raise InferenceError(f'images have shape {images.shape}; expected (N, H, W, C) or (N, H, W).')
  if images.shape[1:] == tuple(image_shape):
    return images
  if images.shape[-1] not in (1, 3, 4):
    raise InferenceError(f'images of shape {images.shape[1:]} cannot be converted to the '
                         f'network\'s {tuple(image_shape)}: give 1, 3 or 4 channels.')
  from PIL import Image  # pylint: disable=g-import-not-at-top
  mode, (height, width, _) = _mode(image_shape), image_shape
  return np.stack([image_files.conform(Image.fromarray(x[..., 0] if x.shape[-1] == 1 else x),
                                       (width, height), mode) for x in images])


def read_image(path, image_shape) -> np.ndarray:
  """The image file `path` as uint8 `image_shape`, decoded as the data sets decode theirs."""
  height, width, _ = image_shape
  mode = _mode(image_shape)
  try:
    return image_files.decode_image(path, (width, height), mode)
  except Exception as e:  # pylint: disable=broad-except  (PIL raises many kinds)
    raise InferenceError(f'cannot read image {path}: {type(e).__name__}: {e}.') from e


def find_image_files(folder) -> List[str]:
  """The paths of the image files in `folder` and its subfolders, sorted."""
  return [os.path.join(folder, f) for f in image_files.list_images(folder, recursive=True)]


@dataclasses.dataclass
class ImageSet:
  """Images to predict, read a batch at a time: a name per image (a file path, or `file.npz[i]`),
  `read(start, stop)` -> uint8 (stop - start, H, W, C), and the class ids when known."""
  names: List[str]
  read: Callable[[int, int], np.ndarray]
  labels: Optional[np.ndarray] = None

  def __len__(self):
    return len(self.names)


def open_images(path, image_shape) -> ImageSet:
  """The images of `path`, converted to `image_shape`: a folder (all its images, subfolders
  included), one image file, or an .npz file with uint8 images `x` (N, H, W[, C])."""
  if os.path.isdir(path):
    files = find_image_files(path)
    if not files:
      raise InferenceError(f'{path} holds no image file '
                           f'({", ".join(image_files.IMAGE_EXTENSIONS)}).')
    return _file_set(files, image_shape)
  if not os.path.isfile(path):
    raise InferenceError(f'{path} does not exist.')
  if path.lower().endswith('.npz'):
    x = _npz_arrays(path, ('x',))['x']
    return ImageSet([f'{path}[{i}]' for i in range(len(x))],
                    lambda start, stop: fit_images(x[start:stop], image_shape))
  return _file_set([path], image_shape)


def open_labeled_images(path, image_shape, class_names: Sequence[str]) -> ImageSet:
  """Images with their class: a folder of `<class name>/` folders of images (subfolders
  included; every folder must be one of `class_names`, not every class need have one), or an
  .npz file with uint8 images `x` and integer labels `y` (0..K-1)."""
  num_classes = len(class_names)
  if os.path.isdir(path):
    folders = sorted(d for d in os.listdir(path)
                     if os.path.isdir(os.path.join(path, d)) and not d.startswith('.'))
    unknown = [d for d in folders if d not in class_names]
    if unknown or not folders:
      found = f'these are not: {", ".join(unknown)}' if unknown else 'it has none'
      raise InferenceError(f'{path} must hold one folder per class, named as the run\'s classes '
                           f'({", ".join(class_names)}); {found}.')
    files, labels = [], []
    for folder in folders:
      in_folder = find_image_files(os.path.join(path, folder))
      files += in_folder
      labels += [list(class_names).index(folder)] * len(in_folder)
    if not files:
      raise InferenceError(f'the class folders of {path} hold no image.')
    return dataclasses.replace(_file_set(files, image_shape), labels=np.asarray(labels))
  if not (os.path.isfile(path) and path.lower().endswith('.npz')):
    raise InferenceError(f'{path} is neither a folder of class folders nor an .npz file.')
  arrays = _npz_arrays(path, ('x', 'y'))
  x, y = arrays['x'], arrays['y']
  if not np.issubdtype(y.dtype, np.integer) or y.shape != (len(x),) or (
      len(y) and not 0 <= y.min() <= y.max() < num_classes):
    raise InferenceError(f'{path}: y must be {len(x)} integer class ids in 0..{num_classes - 1} '
                         f'(it is {y.dtype} {y.shape}).')
  return ImageSet([f'{path}[{i}]' for i in range(len(x))],
                  lambda start, stop: fit_images(x[start:stop], image_shape), y)


def _file_set(files, image_shape):
  return ImageSet(list(files), lambda start, stop: np.stack(
      [read_image(f, image_shape) for f in files[start:stop]]))


def _npz_arrays(path, keys):
  try:
    with np.load(path, allow_pickle=False) as f:
      found = list(f.files)
      arrays = {k: f[k] for k in keys if k in found}
  except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
    raise InferenceError(f'cannot read {path}: {type(e).__name__}: {e}.') from e
  missing = [k for k in keys if k not in arrays]
  if missing:
    raise InferenceError(f'{path} has no {" or ".join(missing)} (it has: '
                         f'{", ".join(found) or "nothing"}).')
  return arrays


def predict_all(model: Model, images: ImageSet, progress_every: float = 10.0) -> np.ndarray:
  """Probabilities (N, K) of every image of `images`, read and predicted a batch at a time;
  prints a progress line (images/s, ETA) every `progress_every` seconds."""
  out, total = [np.zeros((0, model.num_classes), np.float32)], len(images)
  clock = None  # (time, images done) after the first batch: rates exclude its compilation.
  for start in range(0, total, model.batch_size):
    stop = min(start + model.batch_size, total)
    out.append(model.predict(images.read(start, stop)))
    now = time.time()
    if clock is None:
      clock, last_print = (now, stop), now
    elif now - last_print >= progress_every and stop < total:
      last_print, rate = now, (stop - clock[1]) / max(now - clock[0], 1e-9)
      print(f'{stop}/{total} images ({100 * stop / total:.1f}%) | {rate:.0f} images/s | ETA '
            f'{reporting.format_seconds((total - stop) / rate)}', flush=True)
  return np.concatenate(out)


def define_model_flags(purpose):
  """The flags of every inference tool that say which model: --workdir, --weights, --run.
  Called when a tool runs as a program, so that importing the tools defines no flag."""
  flags.DEFINE_string('workdir', None, f'Workdir of the run whose model {purpose}.')
  flags.DEFINE_enum('weights', 'reported', WEIGHTS,
                    "'reported': the model the run reports (its EMA model where it has one).")
  flags.DEFINE_integer('run', 0, "Which of the run's config.num_runs runs.")
  flags.mark_flag_as_required('workdir')


def cli_setup():
  """What the inference command-line tools do first: the CPU, with its fast set-up
  (alc_jax/cpu_setup.py), before anything starts JAX; orbax's INFO lines off."""
  jax.config.update('jax_platforms', 'cpu')
  cpu_setup.configure()
  logging.set_verbosity(logging.WARNING)


def run_tool(argv, tool, *args, **kwargs):
  """The body of an inference tool's absl `main`: `tool(*args, **kwargs)` after `cli_setup`,
  an InferenceError printed as one line, `Error: ...`, exit status 1; Ctrl-C one line, 130."""
  if len(argv) > 1:
    raise app.UsageError(f'Too many command-line arguments: {argv[1:]}')
  cli_setup()
  try:
    tool(*args, **kwargs)
  except InferenceError as e:
    sys.exit(f'Error: {e}')
  except KeyboardInterrupt:  # Every file written so far is whole (workdir_io's writers).
    print('Stopped by Ctrl-C: rerun the same command (any file already written is whole).',
          file=sys.stderr, flush=True)
    sys.exit(130)
