"""README.md and the guides it links say what the code does.

* The layout map matches the tree: every path it names exists, every module is named.
* Every relative link (and its #anchor) of README.md, docs/guide_own_data.md and
  docs/development.md resolves.
* Every config field they name (`--config.a.b=`, `config.a.b`, `a.b=value`, the guide's table of
  fields) exists in configs/default.py, and the guide's table gives its default value.
* Every `--flag` of the README and the guide is defined by the tool it is passed to (alc_jax/main.py,
  predict.py, evaluate.py, export.py; read from their source, nothing is imported).
* The export loading snippet is alc_jax/export.py's own (SNIPPET).
* The README stays a guide a newcomer reads in minutes; lab notes go to docs/development.md.

Static checks only: no JAX, no training.
"""

import ast
import os
import re

import pytest

from tests.conftest import ROOT

README = 'README.md'
GUIDE = 'docs/guide_own_data.md'
DEVELOPMENT = 'docs/development.md'
MAX_README_LINES = 220  # Issue 29: ~150-200 lines; the details live in docs/.
TOOLS = ('main', 'predict', 'evaluate', 'export')


def _read(path):
  with open(os.path.join(ROOT, path), encoding='utf-8') as f:
    return f.read()


def _layout_section():
  text = _read(README)
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


# --- Links ------------------------------------------------------------------------------------


def _anchor(heading):
  """GitHub's anchor of a markdown heading: lower case, punctuation dropped, spaces to hyphens."""
  text = re.sub(r'[`*_]', '', heading.strip().lower())
  return re.sub(r'[^\w\- ]', '', text).replace(' ', '-')


@pytest.mark.parametrize('path', [README, GUIDE, DEVELOPMENT])
def test_relative_links_resolve(path):
  text = _read(path)
  links = re.findall(r'\]\(([^)\s]+)\)', text)
  assert links, f'{path} has no links'
  for link in links:
    if re.match(r'[a-z]+://', link):
      continue
    target, _, anchor = link.partition('#')
    target_path = os.path.normpath(os.path.join(os.path.dirname(path), target)) if target else path
    assert os.path.exists(os.path.join(ROOT, target_path)), f'{path} links {link!r}: no such file'
    if anchor:
      headings = re.findall(r'^#+ (.+)$', _read(target_path), re.M)
      assert anchor in {_anchor(h) for h in headings}, (
          f'{path} links {link!r}: {target_path} has no heading with that anchor')


# --- Config fields ----------------------------------------------------------------------------


def _default_config():
  from configs import default  # pylint: disable=g-import-not-at-top  (ml_collections only)
  return default.get_config()


def _field(config, dotted):
  """The value of config field `dotted` ('a.b.c'), or KeyError."""
  node = config
  for part in dotted.split('.'):
    if not hasattr(node, 'keys') or part not in node.keys():
      raise KeyError(dotted)
    node = node[part]
  return node


FILE_SUFFIXES = ('json', 'jaxexport', 'npz', 'py', 'csv', 'png', 'md')


def _named_fields(text, config):
  """The config fields a text names: `--config.a.b`, `config.a.b`, backquoted `a.b=value` and
  backquoted `block.field`, where the first part is a field of the config (file names such as
  `model.json` excepted)."""
  names = set(re.findall(r'(?<![\w/])(?:--)?config\.([a-z_][\w]*(?:\.[a-z_]\w*)*)', text))
  names |= set(re.findall(r'`([a-z_]\w*(?:\.[a-z_]\w*)*)=[^`\s]*`', text))
  names |= {name for name in re.findall(r'`([a-z_]\w*(?:\.[a-z_]\w*)+)`', text)
            if name.rsplit('.', 1)[1] not in FILE_SUFFIXES}
  return {name for name in names if name.split('.')[0] in config.keys()}


@pytest.mark.parametrize('path', [README, GUIDE])
def test_every_config_field_named_exists(path):
  config = _default_config()
  names = _named_fields(_read(path), config)
  assert len(names) > 5, f'{path} names almost no config field: is the pattern still right?'
  for name in sorted(names):
    try:
      _field(config, name)
    except KeyError:
      pytest.fail(f'{path} names config.{name}, which configs/default.py does not have')


def _literal(text):
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text.strip('`')


def test_the_guide_table_of_fields_gives_their_defaults():
  config = _default_config()
  rows = re.findall(r'^\| `([\w.]+)` \| ([^|]+) \|', _read(GUIDE), re.M)
  assert len(rows) >= 8, 'the guide\'s table of fields is missing'
  for name, stated in rows:
    actual = _field(config, name)
    assert _literal(stated.strip()) == actual, (
        f'{GUIDE} gives config.{name} the default {stated.strip()}; configs/default.py has '
        f'{actual!r}')


# --- Command-line flags -----------------------------------------------------------------------


def _defined_flags(tool):
  """The flags alc_jax/<tool>.py defines (and, through inference.define_model_flags, those of
  alc_jax/inference.py), read from the source."""
  source = _read(f'alc_jax/{tool}.py')
  names = set(re.findall(r"DEFINE_\w+\(\s*'(\w+)'", source))
  if 'inference.define_model_flags' in source:
    names |= set(re.findall(r"DEFINE_\w+\(\s*'(\w+)'", _read('alc_jax/inference.py')))
  return names


def _commands(text):
  """(tool, [flag names]) of every `python -m alc_jax.TOOL ...` command, continuation lines
  joined."""
  text = text.replace('\\\n', ' ')
  for tool, rest in re.findall(r'python -m alc_jax\.(\w+)([^\n`]*)', text):
    yield tool, re.findall(r'(?<!\S)--([\w]+)', rest)


@pytest.mark.parametrize('path', [README, GUIDE])
def test_every_command_uses_flags_its_tool_defines(path):
  config = _default_config()
  commands = list(_commands(_read(path)))
  assert {tool for tool, _ in commands} >= set(TOOLS), f'{path} lacks a command of a tool'
  for tool, flags in commands:
    assert tool in TOOLS, f'{path} runs alc_jax.{tool}, which is not a tool'
    defined = _defined_flags(tool)
    for flag in flags:
      assert flag in defined, f'{path}: alc_jax.{tool} has no flag --{flag}'
  for name in re.findall(r'--config\.([\w.]+)', _read(path)):
    _field(config, name)


@pytest.mark.parametrize('path', [README, GUIDE])
def test_every_flag_named_in_the_text_exists(path):
  defined = set().union(*(_defined_flags(tool) for tool in TOOLS))
  for flag in re.findall(r'`--(\w+)', _read(path)):
    assert flag in defined, f'{path} names --{flag}, which no tool defines'


# --- The export snippet and the README's length -----------------------------------------------


def _export_snippet():
  tree = ast.parse(_read('alc_jax/export.py'))
  for node in tree.body:
    if isinstance(node, ast.Assign) and getattr(node.targets[0], 'id', None) == 'SNIPPET':
      return ast.literal_eval(node.value)
  raise AssertionError('alc_jax/export.py has no SNIPPET')


@pytest.mark.parametrize('path', [README, GUIDE])
def test_the_export_snippet_is_the_one_export_writes(path):
  snippet = _export_snippet().format(directory='my_export')
  blocks = re.findall(r'```python\n(.*?)```', _read(path), re.S)
  assert snippet in blocks, f'{path} has no python block equal to alc_jax/export.py SNIPPET'


def test_the_readme_stays_short():
  lines = len(_read(README).splitlines())
  assert lines <= MAX_README_LINES, (
      f'README.md has {lines} lines (at most {MAX_README_LINES}): it is a guide; move details to '
      f'{GUIDE} or {DEVELOPMENT}.')
