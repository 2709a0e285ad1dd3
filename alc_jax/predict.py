"""Predicts classes of images: `python -m alc_jax.predict --workdir=W --input=PATH --out=FILE.csv`.

W is the workdir of a run of alc_jax.main (finished, or interrupted after a checkpoint). PATH is a
folder (its images, subfolders included), one image, or an .npz file with uint8 images `x`
(N, H, W[, C]); images are converted to the run's image size and channel count as they are read
(alc_jax/inference.py). FILE.csv holds one row per image:

  path,class,confidence,p_<class name>,...

`path` is the image file (`file.npz[i]` for the i-th image of an npz), `class` the predicted class
by name (the run's class names, e.g. its class folders; without names, the label id),
`confidence` its probability, and one `p_<class name>` column per class gives every probability.

Pseudo-labelling: run it on the unlabeled pool and keep the rows whose confidence clears a
threshold as labels for the next round of training (e.g. as class folders of a folder data set).

The model is the one the run reports as its final one (the EMA teacher where the method has one,
else the student); --weights=student forces the student, --run=K picks one of its
config.num_runs runs. It runs on the CPU and prints a progress line (images/s, ETA) for large
inputs.
"""

import csv
import io
import os
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')  # TensorFlow's start-up lines (TFDS, clu).

from absl import app, flags

from alc_jax import inference, workdir_io

FLAGS = flags.FLAGS


def define_flags():
  inference.define_model_flags('predicts')
  flags.adopt_module_key_flags(inference)  # --workdir, --weights, --run in --help.
  flags.DEFINE_string('input', None,
                      'A folder of images (recursive), an image, or an .npz with x.')
  flags.DEFINE_string('out', None, 'The CSV file to write.')
  flags.DEFINE_integer('batch_size', 256, 'Images per call of the network.')
  flags.mark_flags_as_required(['input', 'out'])


def main(argv):
  inference.run_tool(argv, predict, FLAGS.workdir, FLAGS.input, FLAGS.out, weights=FLAGS.weights,
                     run=FLAGS.run, batch_size=FLAGS.batch_size)


def predict(workdir, input_path, out, weights='reported', run=0, batch_size=256):
  """Writes the predictions of the images of `input_path` to the CSV file `out` (see the module
  docstring); returns the Model that predicted."""
  model = inference.load(workdir, weights=weights, run=run, batch_size=batch_size)
  images = inference.open_images(input_path, model.image_shape)
  started = time.time()
  probabilities = inference.predict_all(model, images)
  rate = len(images) / max(time.time() - started, 1e-9)
  write_csv(out, images.names, probabilities, model.labels)
  print(f'Predicted {len(images)} images ({rate:.0f} images/s) with the {model.weights} of run '
        f'{model.run} at step {model.step}: {out}', flush=True)
  return model


def write_csv(path, names, probabilities, labels):
  """The CSV of the module docstring, composed in memory and then written whole
  (workdir_io.write_bytes): a failure part-way leaves an earlier CSV at `path` as it was."""
  if not workdir_io.is_remote(path):
    workdir_io.make_dirs(os.path.dirname(os.path.abspath(path)))
  text = io.StringIO(newline='')
  writer = csv.writer(text)
  writer.writerow(['path', 'class', 'confidence'] + [f'p_{label}' for label in labels])
  for name, p in zip(names, probabilities):
    best = int(p.argmax())
    writer.writerow([name, labels[best], f'{p[best]:.6g}'] + [f'{v:.6g}' for v in p])
  # surrogateescape: a file name in another encoding than UTF-8 keeps the bytes it has on disk.
  workdir_io.write_bytes(path, text.getvalue().encode('utf-8', 'surrogateescape'))


if __name__ == '__main__':
  define_flags()
  app.run(main)
