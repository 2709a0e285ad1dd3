"""A self-contained inference artifact: `python -m alc_jax.export --workdir=W --out=DIR`.

DIR gets

  model.jaxexport  the forward pass of the run's model, its normalisation (and ZCA) included,
                   serialised with `jax.export`: uint8 images (N, H, W, C) in, float32 class
                   probabilities (N, K) out, for any N; lowered for the CPU and CUDA GPUs
                   (--platforms);
  model.json       class_names (index = class id), image_shape [H, W, C], which weights;
  README.md        what it is and how to load it.

The model is the one the run reports as its final one unless --weights/--run say otherwise (see
alc_jax/predict.py). Loading it takes jax and numpy alone, not alc_jax:

  import json

  import numpy as np
  from jax import export

  directory = 'my_export'  # The --out of alc_jax.export.
  with open(directory + '/model.json') as f:
    info = json.load(f)
  with open(directory + '/model.jaxexport', 'rb') as f:
    forward = export.deserialize(bytearray(f.read()))
  images = np.zeros([2] + info['image_shape'], np.uint8)  # Your uint8 (N, H, W, C) images.
  probabilities = np.asarray(forward.call(images))  # (N, K) for any N.
  print([info['class_names'][k] for k in probabilities.argmax(-1)])

Images of another size or channel count must be converted first (alc_jax.inference.fit_images
shows how: PIL's convert('L' or 'RGB') and a bicubic resize, as the data sets resize).
"""

import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')  # TensorFlow's start-up lines (TFDS, clu).

import jax
import jax.numpy as jnp
from absl import app, flags

from alc_jax import inference, workdir_io

FLAGS = flags.FLAGS

# How to load the artifact (README.md, and the module docstring above): jax and numpy only.
SNIPPET = """import json

import numpy as np
from jax import export

directory = {directory!r}  # The --out of alc_jax.export.
with open(directory + '/model.json') as f:
  info = json.load(f)
with open(directory + '/model.jaxexport', 'rb') as f:
  forward = export.deserialize(bytearray(f.read()))
images = np.zeros([2] + info['image_shape'], np.uint8)  # Your uint8 (N, H, W, C) images.
probabilities = np.asarray(forward.call(images))  # (N, K) for any N.
print([info['class_names'][k] for k in probabilities.argmax(-1)])
"""

README = """# An exported alc_jax model

`model.jaxexport` is the forward pass of a model trained by alc_jax, serialised with `jax.export`
(jax {jax_version}, lowered for {platforms}): uint8 images (N, {height}, {width}, {channels}) in,
float32 probabilities of its {num_classes} classes (N, {num_classes}) out, for any N. The
normalisation of its training images is part of it. `model.json` has the class names (index =
class id) and the image shape. It is the {weights} of run {run} at step {step} of the run in
`{workdir}`.

{copy_note}Load and run it with jax and numpy alone (a jax at least as new as {jax_version}; see
jax.export's compatibility guarantees):

```python
{snippet}```

Images of another size or channel count must be converted first: PIL's `convert('L')`
(grayscale, C = 1) or `convert('RGB')` (C = 3), and a bicubic `resize((width, height))`.
"""


def define_flags():
  inference.define_model_flags('is exported')
  flags.adopt_module_key_flags(inference)  # --workdir, --weights, --run in --help.
  flags.DEFINE_string('out', None, 'Folder for model.jaxexport, model.json and README.md.')
  flags.DEFINE_list('platforms', ['cpu', 'cuda'], 'Platforms to lower for (cpu, cuda, rocm, tpu).')
  flags.mark_flags_as_required(['out'])


def main(argv):
  inference.run_tool(argv, export, FLAGS.workdir, FLAGS.out, weights=FLAGS.weights, run=FLAGS.run,
                     platforms=FLAGS.platforms)


def export(workdir, out, weights='reported', run=0, platforms=('cpu', 'cuda')):
  """Writes model.jaxexport, model.json and README.md of the run's model into `out`; returns
  the jax.export.Exported."""
  model = inference.load(workdir, weights=weights, run=run)
  exported = export_forward(model, platforms)
  info = {'class_names': list(model.labels), 'image_shape': list(model.image_shape),
          'num_classes': model.num_classes, 'weights': model.weights, 'run': model.run,
          'step': model.step, 'workdir': workdir, 'platforms': list(exported.platforms),
          'jax_version': jax.__version__}
  workdir_io.make_dirs(out)
  workdir_io.write_bytes(os.path.join(out, 'model.jaxexport'), bytes(exported.serialize()))
  workdir_io.write_json(os.path.join(out, 'model.json'), info)
  height, width, channels = model.image_shape
  readme = README.format(jax_version=jax.__version__, platforms=', '.join(exported.platforms),
                         height=height, width=width, channels=channels,
                         num_classes=model.num_classes, weights=model.weights, run=model.run,
                         step=model.step, workdir=workdir, **_where_to_load(out))
  workdir_io.write_bytes(os.path.join(out, 'README.md'), readme.encode('utf-8'))
  print(f'Exported the {model.weights} of run {model.run} at step {model.step} for '
        f'{", ".join(exported.platforms)}: {out}', flush=True)
  return exported


def _where_to_load(out):
  """The README's snippet reads local files: the folder's absolute path, or for a bucket
  (gs://...), the folder's name and how to copy it there."""
  if not workdir_io.is_remote(out):
    return {'snippet': SNIPPET.format(directory=os.path.abspath(out)), 'copy_note': ''}
  name = out.rstrip('/').rsplit('/', 1)[-1]
  return {'snippet': SNIPPET.format(directory=name),
          'copy_note': f'Copy the folder from its bucket first: `gsutil cp -r {out} .`\n\n'}


def export_forward(model, platforms=('cpu', 'cuda')):
  """`model.forward` (weights and normalisation as constants) exported for uint8 images of any
  batch size: (n, H, W, C) with n symbolic."""
  batch, = jax.export.symbolic_shape('n')
  images = jax.ShapeDtypeStruct((batch, *model.image_shape), jnp.uint8)
  return jax.export.export(jax.jit(model.forward), platforms=tuple(platforms))(images)


if __name__ == '__main__':
  define_flags()
  app.run(main)
