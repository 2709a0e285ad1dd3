"""README.md's layout map matches the tree: every path it names exists, every module is named."""

import os
import re

from tests.conftest import ROOT


def _layout_section():
  with open(os.path.join(ROOT, 'README.md'), encoding='utf-8') as f:
    text = f.read()
  start = text.index('## Layout')
  end = text.find('\n## ', start + 1)
  return text[start:end if end > 0 else None]


def test_every_path_in_the_layout_map_exists():
  section = _layout_section()
  rows = [line for line in section.splitlines() if line.startswith('| `')]
  assert len(rows) > 10, 'the layout table is missing'
  for row in rows:
    first = row.split('|')[1]
    for path in re.findall(r'`([^`]+)`', first):
      assert os.path.exists(os.path.join(ROOT, path)) or os.path.exists(
          os.path.join(ROOT, 'alc_jax', path)), f'README layout names {path!r}, not in the tree'


def test_every_module_is_in_the_layout_map():
  section = _layout_section()
  for package in ('alc_jax', 'alc_jax/data', 'alc_jax/models', 'alc_jax/methods', 'bench'):
    for name in sorted(os.listdir(os.path.join(ROOT, package))):
      if name.endswith('.py') and name != '__init__.py' and name != 'bench_torch_peer.py':
        assert f'{name}`' in section or f'{package}/{name}' in section, (
            f'{package}/{name} is not in the README layout map')
