"""notebooks/alc_losses.ipynb runs end to end on real Fashion-MNIST, in a fresh kernel of this
interpreter, from the notebooks/ folder; and it is saved without outputs."""

import json
import os
import sys

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = os.path.join(ROOT, 'notebooks')
NOTEBOOK = os.path.join(NOTEBOOKS, 'alc_losses.ipynb')
# The IDX files the notebook loads (alc_jax/data/fashion_mnist.py: $ALC_FASHION_MNIST_DIR, else
# Debian's dataset-fashion-mnist), gzip-compressed or not.
FASHION_MNIST_DIR = (os.environ.get('ALC_FASHION_MNIST_DIR')
                     or '/usr/share/datasets/fashion-mnist')
FASHION_MNIST_STEMS = ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte',
                       't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte')
CELL_TIMEOUT_S = 300


def _fashion_mnist_present():
  return all(any(os.path.isfile(os.path.join(FASHION_MNIST_DIR, stem + ext)) for ext in ('.gz', ''))
             for stem in FASHION_MNIST_STEMS)


def _kernel_manager(kernel_dir):
  """A manager for a 'python3' kernel run by this interpreter (sys.executable), whatever other
  'python3' kernel specs the machine has (a user's or the system's could run another Python):
  the spec is written to a folder of its own, the only one the spec manager searches."""
  spec_dir = os.path.join(kernel_dir, 'python3')
  os.makedirs(spec_dir)
  with open(os.path.join(spec_dir, 'kernel.json'), 'w') as f:
    json.dump({'argv': [sys.executable, '-m', 'ipykernel_launcher', '-f', '{connection_file}'],
               'display_name': 'Python 3 (this interpreter)', 'language': 'python'}, f)
  specs = KernelSpecManager(kernel_dirs=[kernel_dir], ensure_native_kernel=False)
  return KernelManager(kernel_name='python3', kernel_spec_manager=specs)


def test_notebook_is_saved_without_outputs():
  nb = nbformat.read(NOTEBOOK, as_version=4)
  nbformat.validate(nb)
  for i, cell in enumerate(nb.cells):
    if cell.cell_type == 'code':
      assert not cell.outputs and cell.execution_count is None, (
          f'cell {i} of {NOTEBOOK} was saved with outputs: clear them before committing '
          '(e.g. `jupyter nbconvert --clear-output --inplace`)')


@pytest.mark.skipif(not _fashion_mnist_present(),
                    reason=f'Fashion-MNIST IDX files not in {FASHION_MNIST_DIR} '
                           '(apt-get install dataset-fashion-mnist, or set ALC_FASHION_MNIST_DIR)')
def test_notebook_runs_end_to_end(tmp_path, monkeypatch):
  monkeypatch.setenv('ALC_TFDS_DOWNLOAD', '0')  # The kernel inherits the environment.
  monkeypatch.setenv('MPLBACKEND', 'module://matplotlib_inline.backend_inline')
  nb = nbformat.read(NOTEBOOK, as_version=4)
  client = NotebookClient(
      nb, km=_kernel_manager(str(tmp_path / 'kernels')), timeout=CELL_TIMEOUT_S,
      startup_timeout=120, resources={'metadata': {'path': NOTEBOOKS}})  # cwd = notebooks/
  client.execute()  # Raises CellExecutionError, with the cell's traceback, if any cell fails.

  outputs = [o for cell in nb.cells if cell.cell_type == 'code' for o in cell.outputs]
  assert not [o for o in outputs if o.output_type == 'error']
  text = ''.join(o.get('text', '') for o in outputs if o.output_type == 'stream')
  for expected in ('reproduces the head', 'l_alc =', '|d l_alc / d p|', '|d l_alc / d head',
                   'supervised', 'consistency', 'total'):
    assert expected in text, expected
  assert any('image/png' in o.get('data', {}) for o in outputs), 'the heatmap was not drawn'
