"""Metrics of a trained model: `python -m alc_jax.evaluate --workdir=W --data=D --out=DIR`.

D is a folder of class folders, `<class name>/*` images (subfolders included; each folder must be
one of the run's classes, named as in its training data, or the label id for a run without class
names), or an .npz file with uint8 images `x` and integer labels `y`. Images are converted to the
run's image size and channels as alc_jax/predict.py converts them. DIR gets

  metrics.json          accuracy, balanced accuracy (mean recall over the classes present),
                        macro F1 (over the classes present or predicted), per class precision,
                        recall, F1 and support, and the confusion matrix (rows: true class,
                        columns: predicted class, in class-id order);
  confusion_matrix.png  the confusion matrix with the class names.

The model is the one the run reports as its final one unless --weights/--run say otherwise (see
alc_jax/predict.py). Runs on the CPU.
"""

import io
import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')  # TensorFlow's start-up lines (TFDS, clu).

import numpy as np
from absl import app, flags

from alc_jax import inference, workdir_io

FLAGS = flags.FLAGS


def define_flags():
  inference.define_model_flags('is evaluated')
  flags.adopt_module_key_flags(inference)  # --workdir, --weights, --run in --help.
  flags.DEFINE_string('data', None, 'A folder of <class name>/ image folders, or an .npz (x, y).')
  flags.DEFINE_string('out', None, 'Folder for metrics.json and confusion_matrix.png.')
  flags.DEFINE_integer('batch_size', 256, 'Images per call of the network.')
  flags.mark_flags_as_required(['data', 'out'])


def main(argv):
  inference.run_tool(argv, evaluate, FLAGS.workdir, FLAGS.data, FLAGS.out, weights=FLAGS.weights,
                     run=FLAGS.run, batch_size=FLAGS.batch_size)


def evaluate(workdir, data, out, weights='reported', run=0, batch_size=256):
  """Writes metrics.json and confusion_matrix.png of the model on `data` into `out`; returns
  the metrics."""
  model = inference.load(workdir, weights=weights, run=run, batch_size=batch_size)
  images = inference.open_labeled_images(data, model.image_shape, model.labels)
  predictions = inference.predict_all(model, images).argmax(-1)
  metrics = classification_metrics(images.labels, predictions, model.num_classes)
  names = model.labels
  record = {'workdir': workdir, 'data': data, 'weights': model.weights, 'run': model.run,
            'step': model.step, 'class_names': list(names), **_with_classes(metrics, names)}
  workdir_io.make_dirs(out)
  workdir_io.write_json(os.path.join(out, 'metrics.json'), record)
  plot_confusion(metrics['confusion_matrix'], names, os.path.join(out, 'confusion_matrix.png'))
  print(f'{metrics["num_images"]} images: accuracy {100 * metrics["accuracy"]:.2f}%, balanced '
        f'accuracy {100 * metrics["balanced_accuracy"]:.2f}%, macro F1 '
        f'{100 * metrics["macro_f1"]:.2f}% ({model.weights} of run {model.run} at step '
        f'{model.step}): {out}', flush=True)
  return record


def _with_classes(metrics, names):
  """`metrics` for JSON: the per-class arrays as {class name: {precision, recall, f1, support}},
  the confusion matrix as lists."""
  per_class = ('precision', 'recall', 'f1', 'support')
  out = {k: v for k, v in metrics.items() if k not in per_class}
  out['confusion_matrix'] = metrics['confusion_matrix'].tolist()
  out['per_class'] = {name: {k: metrics[k][i].item() for k in per_class}
                      for i, name in enumerate(names)}
  return out


def classification_metrics(labels, predictions, num_classes):
  """Accuracy, balanced accuracy, macro F1, per-class precision/recall/F1/support and the
  confusion matrix of integer `labels` and `predictions` (N,), classes 0..num_classes-1.

  Conventions (scikit-learn's defaults): precision of a class never predicted and recall of a
  class never present are 0; balanced accuracy averages the recall over the classes present;
  macro F1 averages F1 over the classes present or predicted.
  """
  labels, predictions = np.asarray(labels, np.int64), np.asarray(predictions, np.int64)
  confusion = np.zeros((num_classes, num_classes), np.int64)
  np.add.at(confusion, (labels, predictions), 1)
  correct, support, predicted = np.diag(confusion), confusion.sum(1), confusion.sum(0)
  ratio = lambda a, b: np.divide(a, b, out=np.zeros(num_classes), where=b > 0)
  precision, recall = ratio(correct, predicted), ratio(correct, support)
  f1 = ratio(2 * precision * recall, precision + recall)
  present = support > 0
  return {
      'num_images': int(len(labels)),
      'accuracy': float(correct.sum() / max(len(labels), 1)),
      'balanced_accuracy': float(recall[present].mean()) if present.any() else 0.0,
      'macro_f1': float(f1[present | (predicted > 0)].mean()) if len(labels) else 0.0,
      'precision': precision, 'recall': recall, 'f1': f1, 'support': support,
      'confusion_matrix': confusion,
  }


def plot_confusion(confusion, names, path):
  """The confusion matrix as a PNG: cells coloured by the share of their true class (row),
  annotated with counts while there are few classes; class names on the axes."""
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top  (Agg, no pyplot)
  k = len(names)
  size = min(3 + 0.45 * k, 24)
  fig = Figure(figsize=(size + 1, size))
  ax = fig.subplots()
  shares = confusion / np.maximum(confusion.sum(1, keepdims=True), 1)
  image = ax.imshow(shares, cmap='Blues', vmin=0, vmax=1)
  fig.colorbar(image, ax=ax, label='share of the true class')
  if k <= 60:  # Beyond, names and counts would not be legible.
    ax.set_xticks(range(k), names, rotation=90)
    ax.set_yticks(range(k), names)
  if k <= 25:
    for (row, col), count in np.ndenumerate(confusion):
      ax.text(col, row, str(count), ha='center', va='center', fontsize=8,
              color='white' if shares[row, col] > 0.5 else 'black')
  ax.set_xlabel('predicted class')
  ax.set_ylabel('true class')
  ax.set_title(f'Confusion matrix ({confusion.sum()} images)')
  fig.tight_layout()
  buffer = io.BytesIO()
  fig.savefig(buffer, format='png', dpi=100)
  workdir_io.write_bytes(path, buffer.getvalue())


if __name__ == '__main__':
  define_flags()
  app.run(main)
