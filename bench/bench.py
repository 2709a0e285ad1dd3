"""Train-step throughput of the ALC trainer (a benchmark, not a test).

  python bench/bench.py [--quick] [--models cnn13,wrn28_2] [--methods ...] [--width W]
      [--batch-size B] [--dtype float32|bfloat16] [--num-runs R] [--steps N] [--json out.json]
      [--mfu] [--peer] [--levers] [--pairwise [--pairwise-sizes 100,256,...]] [--vectorized N]
      [--skip-table]

The table: for each model and method row, one `train.create_experiment` on a synthetic .npz data
set (random uint8 32x32x3 images, 10 classes: no download, and the step's cost does not depend on
the pixels), then the jitted, vmapped train step compiled ahead of time and timed step by step with
`jax.block_until_ready`. img/s = batch * runs / median step time. A few batches are fetched once up
front and reused, so the host input pipeline is NOT timed (bench/bench_input.py measures it).
`compile s` is the wall time of the first step (lowering + XLA compilation + one execution).

Peak memory: on GPU/TPU the allocator's `peak_bytes_in_use`, on CPU the process' max RSS
(getrusage); both are high-water marks of the whole process so far, so a row can only inherit a
larger earlier value. `xla MiB` is the compiled step's own footprint (arguments + outputs +
temporaries - donated aliases, from `memory_analysis()`), which is per row.

Extra sections (each also prints in the same run):
  --mfu          model FLOPs utilisation: XLA's FLOP count of the lowered step / step time,
                 against the measured peak of a large f32 and bf16 matmul on the same device.
  --peer         the same Mean Teacher CNN-13 step in PyTorch (bench/bench_torch_peer.py, same
                 width and batch), and ours / theirs in images/s. Needs torch in this Python
                 (CPU-only: `pip install torch==2.13.0` on the project's machines, see setup.cfg).
  --levers       CPU only: the Mean Teacher step of the first model under each CPU set-up of
                 alc_jax/cpu_setup.py (all off, + Eigen convolutions, + one device per core, all
                 on = the default), each in a subprocess (the settings must precede JAX's start).
                 Each row says what it ran with: devices in the mesh, and how many of the
                 compiled step's convolutions XLA gave to YNNPACK.
  --pairwise     the ALC pairwise term alone (alc_similarity + label_consistency, forward and
                 backward) as the batch grows, sharded over all devices on the batch axis.
  --vectorized N N seed-vectorised runs in one program (config.num_runs = N), the runs mapped by a
                 loop and by vmap (config.run_batching; the default is loop on CPU, vmap on
                 GPU/TPU), against N separate runs one after another.

`uptime` (the load average) is printed first and last: the numbers mean little on a busy machine.

The last line is `alc_overhead R`, R = ms/step(MT + ALC) / ms/step(MT) of this run (CNN-13 if it
was benchmarked): the table always measures those two rows (added to --methods if missing), then
times more steps of the two compiled programs alternately, so that both see the same background
load, and R is the ratio of those medians.
"""

import argparse
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
os.environ.setdefault('ALC_TFDS_DOWNLOAD', '0')
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import jax  # pylint: disable=wrong-import-position
import jax.numpy as jnp  # pylint: disable=wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position
from jax.sharding import NamedSharding, PartitionSpec as P  # pylint: disable=wrong-import-position

from alc_jax import cpu_setup, host, losses, methods, train  # pylint: disable=wrong-import-position
from alc_jax import runs  # pylint: disable=wrong-import-position
from alc_jax import models as models_lib  # pylint: disable=wrong-import-position
from configs import common, default  # pylint: disable=wrong-import-position

# The rows --methods may name: every row of configs/common.py (every method of the registry,
# with and without ALC); the table's default rows are these.
METHODS = common.METHOD_ROWS
DEFAULT_METHODS = ('supervised', 'pi_model', 'pi_model_alc', 'mean_teacher', 'mean_teacher_alc',
                   'mean_teacher_alc_soft', 'fixmatch', 'fixmatch_alc')
# --models may name any backbone of the registry; the table's default rows are these.
MODELS = models_lib.MODEL_NAMES
DEFAULT_MODELS = ('cnn13', 'wrn28_2')


def method_label(row):
  """'MeanTeacher + ALC (soft)': the registry's label of a row's method, with its ALC."""
  overrides = METHODS[row]
  label = methods.get(overrides['method']).label
  if overrides.get('alc.enabled'):
    label += ' + ALC'
    if overrides.get('alc.imbalance', 'none') != 'none':
      label += f" ({overrides['alc.imbalance']})"
  return label
NUM_BATCHES = 4  # Distinct batches, cycled: no step sees the same input as the step before.
QUICK_WIDTH, QUICK_STEPS = 0.25, 3
OVERHEAD_STEPS = 8  # At least this many alternated steps each for alc_overhead (3 gave +-10%).
# --levers: (row label, ALC_JAX_CPU_DEFAULTS of its subprocess).
LEVER_ROWS = (('all levers off', '0'), ('+ Eigen convolutions', 'convs'),
              ('+ all cores as devices', 'devices'), ('+ unrolled threefry', 'threefry'),
              ('all on (the default)', '1'))


def on_accelerator():
  return jax.devices()[0].platform != 'cpu'


def machine():
  d = jax.devices()[0]
  cpu = host.cpu_in_words(*host.cpu())
  # The load average says whether other processes shared the CPU while this ran.
  load = ', '.join(f'{x:.1f}' for x in os.getloadavg())
  return (f'{cpu}, {os.cpu_count()} CPUs (load average {load}); JAX {jax.__version__} on '
          f'{jax.device_count()} x {d.device_kind} ({d.platform})')


def uptime():
  try:
    return subprocess.run(['uptime'], capture_output=True, text=True, check=True).stdout.strip()
  except (OSError, subprocess.CalledProcessError):
    return 'load average: ' + ', '.join(f'{x:.2f}' for x in os.getloadavg())


def cpu_set_up():
  """What alc_jax/cpu_setup.py set in this process, in words."""
  if on_accelerator():
    return 'none (not on the CPU)'
  applied = cpu_setup.applied
  return (f'convolutions by {"Eigen" if "XLA_FLAGS" in applied else "XLA default"}, '
          f'{jax.device_count()} device(s)'
          f'{" (one per core)" if "jax_num_cpu_devices" in applied else ""}, '
          f'random bits {"unrolled" if "threefry" in applied else "by JAX default"}; '
          f'{cpu_setup.ENV}={os.environ.get(cpu_setup.ENV, "unset")}, '
          f'XLA_FLAGS={os.environ.get("XLA_FLAGS", "")!r}')


def peak_memory():
  """(bytes, what) of the process' memory high-water mark."""
  if on_accelerator():
    stats = jax.devices()[0].memory_stats() or {}
    if 'peak_bytes_in_use' in stats:
      return stats['peak_bytes_in_use'], 'device peak_bytes_in_use'
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, 'host max RSS'  # KiB on Linux.


def xla_bytes(compiled):
  m = compiled.memory_analysis()
  if m is None:
    return float('nan')
  return (m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes
          - m.alias_size_in_bytes)


def xla_flops(lowered):
  """FLOPs of one call from XLA's cost analysis (a dict, or a list of dicts in older JAX).

  Taken from the lowered, not the compiled, program: on GPU the compiled convolutions are cuDNN
  custom calls that XLA's cost analysis does not count (it reported ~3 GFLOP for a 550 GFLOP
  step); before compilation they are ordinary convolutions on every backend (on the CPU the two
  counts agree within 1%).
  """
  cost = lowered.cost_analysis()
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else {}
  return float((cost or {}).get('flops', float('nan')))


def write_synthetic_npz(path, batch_size, seed=0):
  rng = np.random.default_rng(seed)
  n_train = max(1000, 4 * batch_size)  # Enough unlabeled examples for a few distinct batches.
  np.savez(path, x_train=rng.integers(0, 256, (n_train, 32, 32, 3), dtype=np.uint8),
           y_train=np.arange(n_train) % 10,
           x_test=rng.integers(0, 256, (100, 32, 32, 3), dtype=np.uint8),
           y_test=np.arange(100) % 10)


def make_config(args, npz, model, method, num_runs=None, run_batching='auto'):
  config = default.get_config()
  config.dataset.name = 'npz'
  config.dataset.path = npz
  # At least a batch of labels, so the supervised row (all rows labeled) draws full batches.
  config.dataset.num_labels = max(250, -(-args.batch_size // 10) * 10)
  config.batch_size = args.batch_size
  config.labeled_batch_size = max(1, args.batch_size // 10)  # The paper's 10 of 100.
  config.model.name = model
  config.model.width = args.width
  config.compute_dtype = args.dtype
  config.num_runs = num_runs or args.num_runs
  config.run_batching = run_batching
  config.num_train_steps = 10000  # Only shapes the lr schedule; nothing trains that long here.
  return common.apply_row(config, method)


def synthetic_step_config(folder, model, method, width, batch_size=100, dtype='float32',
                          num_runs=1):
  """make_config for `model` / `method` at `width` on synthetic data written into `folder`: the
  step that a --levers row, bench/paired_steps.py and bench/profile_step.py time."""
  npz = os.path.join(folder, 'synthetic.npz')
  write_synthetic_npz(npz, batch_size)
  args = argparse.Namespace(batch_size=batch_size, width=width, dtype=dtype, num_runs=num_runs)
  return make_config(args, npz, model, method)


class Runner:
  """One experiment's train step, compiled, with its state and a few batches fetched up front."""

  def __init__(self, config, compiler_options=None):
    """compiler_options: XLA debug options for this step's compilation only ({name: value}, as
    `jax.stages.Lowered.compile` takes them), so that variants can share one process."""
    self.config = config
    exp = train.create_experiment(config)
    self.devices = len(exp.devices)  # Of the mesh.
    it = exp.train_batches()
    self.batches = [next(it) for _ in range(NUM_BATCHES)]  # The input pipeline is not timed.
    self.state = exp.initial_state
    start = time.perf_counter()
    # Ahead-of-time compilation of the trainer's own jitted step: the same program a run executes,
    # and its cost and memory analyses come for free.
    self.normalization = exp.data.normalization  # An argument of the step, like the state.
    self.lowered = exp.compiled_train_step.lower(self.state, self.batches[0], self.normalization)
    self.compiled = self.lowered.compile(compiler_options)
    self.count = 0
    self.step()
    self.compile_s = time.perf_counter() - start  # First step: lowering + compilation + one run.

  def step(self):
    """Runs one step to completion; returns its wall time in seconds."""
    start = time.perf_counter()
    self.state, metrics = self.compiled(self.state, self.batches[self.count % NUM_BATCHES],
                                        self.normalization)
    jax.block_until_ready((self.state, metrics))
    self.count += 1
    return time.perf_counter() - start


def time_steps(config, steps, warmup=1, keep=False):
  """Builds the experiment, compiles its step and times `steps` steps. Returns a result dict
  (with the live Runner under '_runner' if `keep`)."""
  runner = Runner(config)
  times = [runner.step() for _ in range(warmup + steps)][warmup:]
  step_s = statistics.median(times)
  images = config.batch_size * config.num_runs
  out = {'images_per_second': images / step_s, 'ms_per_step': 1e3 * step_s,
         'step_times_s': times, 'compile_s': runner.compile_s,
         'flops_per_step': xla_flops(runner.lowered), 'xla_bytes': xla_bytes(runner.compiled)}
  out['peak_bytes'], out['peak_kind'] = peak_memory()
  out['load1'] = os.getloadavg()[0]  # Other processes' share of the CPU while this row ran.
  out['mesh_devices'] = runner.devices
  if keep:
    out['_runner'] = runner
  else:
    del runner
    gc.collect()
  return out


def interleaved_steps(runners, steps):
  """{name: its `steps` step times} of a dict of Runners, their steps taken in turn so that all
  see the same background load (on a shared machine, separately timed rows can see different
  loads)."""
  times = {name: [] for name in runners}
  for _ in range(steps):
    for name, runner in runners.items():
      times[name].append(runner.step())
  return times


def print_interleaved(times, batch_size, title, label=str):
  """Prints `title`, then each variant's median ms/step, img/s and speed against the first
  variant's (times: interleaved_steps's; label: a variant's name in words)."""
  base = statistics.median(next(iter(times.values())))
  labels = {name: label(name) for name in times}
  width = max(map(len, labels.values())) + 1
  print(f'\n{title}')
  for name, t in times.items():
    m = statistics.median(t)
    print(f'  {labels[name]:<{width}} {1e3 * m:7.1f} ms/step {batch_size / m:7.1f} img/s  '
          f'x{base / m:.3f}')


def interleaved_ratio(a, b, steps):
  """median step time of b / that of a, their steps interleaved (interleaved_steps)."""
  times = interleaved_steps({'a': a, 'b': b}, steps)
  return statistics.median(times['b']) / statistics.median(times['a']), times['a'], times['b']


def matmul_peak(dtype, n):
  """FLOP/s of an n x n x n matmul in `dtype` (median of repeats): the device's practical peak."""
  a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32).astype(dtype)
  b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32).astype(dtype)
  f = jax.jit(jnp.dot)
  jax.block_until_ready(f(a, b))
  times = []
  for _ in range(5):
    start = time.perf_counter()
    jax.block_until_ready(f(a, b))
    times.append(time.perf_counter() - start)
  return 2 * n ** 3 / statistics.median(times)


def pairwise_bench(sizes, dim=128, classes=10, repeats=10):
  """Forward + backward of alc_similarity + label_consistency alone, batch sharded over devices."""
  n_dev = jax.device_count()
  # Auto axes, as the trainer's mesh: XLA propagates the batch sharding through the matmuls.
  mesh = jax.make_mesh((n_dev,), ('data',), axis_types=(jax.sharding.AxisType.Auto,))
  rows = []
  for b in sizes:
    # A batch that does not split evenly over the devices is replicated instead (said in the row).
    spec = P('data') if b % n_dev == 0 else P()
    sharding = NamedSharding(mesh, spec)

    def loss(x_max, x_avg, outputs, spec=spec):
      s = losses.alc_similarity(x_max, x_avg)
      # Keep S row-sharded like the batch: each device holds B/n rows of the global B x B matrix.
      s = jax.lax.with_sharding_constraint(s, NamedSharding(mesh, P(*spec, None)))
      return losses.label_consistency(s, outputs)

    step = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2)))
    keys = jax.random.split(jax.random.key(b), 3)
    args = [jax.device_put(jax.random.normal(k, shape, jnp.float32) / np.sqrt(dim), sharding)
            for k, shape in zip(keys, ((b, dim), (b, dim), (b, classes)))]
    compiled = step.lower(*args).compile()
    jax.block_until_ready(compiled(*args))
    times = []
    for _ in range(repeats):
      start = time.perf_counter()
      jax.block_until_ready(compiled(*args))
      times.append(time.perf_counter() - start)
    mem = compiled.memory_analysis()
    peak, kind = peak_memory()
    rows.append({'batch': b, 'sharded': spec != P(), 'ms': 1e3 * statistics.median(times),
                 'bxb_mib': b * b * 4 / 2 ** 20,  # One float32 B x B matrix (S, its logits, dS).
                 'xla_temp_mib': (mem.temp_size_in_bytes / 2 ** 20) if mem else float('nan'),
                 'peak_mib': peak / 2 ** 20, 'peak_kind': kind})
  return rows


def run_peer(args, npz_dir):
  """The PyTorch Mean Teacher CNN-13 step (bench/bench_torch_peer.py) in a subprocess."""
  out = os.path.join(npz_dir, 'peer.json')
  cmd = [sys.executable, os.path.join(ROOT, 'bench', 'bench_torch_peer.py'),
         '--width', str(args.width), '--batch-size', str(args.batch_size),
         '--labeled-batch-size', str(max(1, args.batch_size // 10)), '--steps',
         str(args.steps), '--json', out]
  proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
  print(proc.stdout, end='')
  if proc.returncode != 0:
    print(f'peer benchmark failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}')
    return None
  with open(out, encoding='utf-8') as f:
    return json.load(f)


def lever_child(args):
  """One --levers row, in a subprocess started by run_levers: the MT step under this process'
  CPU set-up (ALC_JAX_CPU_DEFAULTS). Writes its measurement to --json."""
  with tempfile.TemporaryDirectory() as tmp:
    config = synthetic_step_config(tmp, args.models.split(',')[0], 'mean_teacher', args.width,
                                   args.batch_size, args.dtype, args.num_runs)
    r = time_steps(config, args.steps, keep=True)
    text = r.pop('_runner').compiled.as_text()
  r.update(devices=jax.device_count(), applied=cpu_setup.applied,
           convs=text.count(' convolution('), ynn_convs=cpu_setup.ynn_convolutions(text))
  with open(args.json, 'w', encoding='utf-8') as f:
    json.dump(r, f, default=float)


def run_levers(args, model, tmp):
  """The MT step of `model` under each CPU set-up of LEVER_ROWS, one subprocess each."""
  print(f'\nCPU set-up levers (alc_jax/cpu_setup.py): MT on {model}, one subprocess per row:',
        flush=True)
  # The user's XLA_FLAGS without what this process' set-up appended; the rows add their own.
  user_flags = os.environ.get('XLA_FLAGS', '').replace(cpu_setup.applied.get('XLA_FLAGS', '\0'),
                                                       '').strip()
  rows = []
  for label, levers in LEVER_ROWS:
    out = os.path.join(tmp, f'levers_{levers}.json')
    env = dict(os.environ, **{cpu_setup.ENV: levers})
    env.pop('XLA_FLAGS', None)
    if user_flags:
      env['XLA_FLAGS'] = user_flags
    cmd = [sys.executable, os.path.abspath(__file__), '--lever-child', '--models', model,
           '--width', str(args.width), '--batch-size', str(args.batch_size), '--dtype',
           args.dtype, '--steps', str(args.steps), '--json', out]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
      print(f'  {label}: failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}')
      continue
    with open(out, encoding='utf-8') as f:
      r = json.load(f)
    r.update(label=label, levers=levers)
    rows.append(r)
    print(f'  measured {label}: {r["images_per_second"]:.1f} img/s', flush=True)
  if not rows:
    return rows
  off = rows[0]['ms_per_step'] if rows[0]['levers'] == '0' else float('nan')
  print(f'{"CPU set-up":<24} {"devices":>7} {"YNN convs":>10} {"img/s":>9} {"ms/step":>9} '
        f'{"x off":>6} {"compile s":>9} {"load":>5}')
  for r in rows:
    print(f'{r["label"]:<24} {r["mesh_devices"]:>7} {r["ynn_convs"]:>4} / {r["convs"]:<3} '
          f'{r["images_per_second"]:>9.1f} {r["ms_per_step"]:>9.1f} '
          f'{r["ms_per_step"] / off:>6.2f} {r["compile_s"]:>9.1f} {r["load1"]:>5.1f}')
  print('devices = of the mesh; YNN convs = convolutions of the compiled step inside YNNPACK '
        'fusions / all; x off = step time / that of all levers off.')
  return rows


def print_table(rows, mfu_peaks):
  head = (f'{"model":<8} {"method":<24} {"width":>6} {"dtype":>8} {"batch":>6} {"runs":>4} '
          f'{"img/s":>9} {"ms/step":>9} {"compile s":>9} {"peak MiB":>9} {"xla MiB":>8} '
          f'{"load":>5}')
  if mfu_peaks:
    head += f' {"GFLOP/step":>10} {"TFLOP/s":>8} {"MFU":>6}'
  print(head)
  for r in rows:
    line = (f'{r["model"]:<8} {r["label"]:<24} {r["width"]:>6g} {r["dtype"]:>8} {r["batch"]:>6} '
            f'{r["runs"]:>4} {r["images_per_second"]:>9.1f} {r["ms_per_step"]:>9.1f} '
            f'{r["compile_s"]:>9.1f} {r["peak_bytes"] / 2 ** 20:>9.0f} '
            f'{r["xla_bytes"] / 2 ** 20:>8.1f} {r["load1"]:>5.1f}')
    if mfu_peaks:
      rate = r['flops_per_step'] / (r['ms_per_step'] / 1e3)
      r['mfu'] = rate / mfu_peaks[r['dtype']]
      line += f' {r["flops_per_step"] / 1e9:>10.2f} {rate / 1e12:>8.3f} {100 * r["mfu"]:>5.1f}%'
    print(line, flush=True)


def parse_args():
  """The command line, with --quick's width and steps filled in; also returns the parser, whose
  error() reports bad --models and --methods."""
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--quick', action='store_true',
                      help=f'CPU-sized: width {QUICK_WIDTH} and {QUICK_STEPS} timed steps '
                           '(unless given)')
  parser.add_argument('--models', default=','.join(DEFAULT_MODELS))
  parser.add_argument('--methods', default=','.join(DEFAULT_METHODS))
  parser.add_argument('--width', type=float, default=None, help='channel multiplier (1.0 = paper)')
  parser.add_argument('--batch-size', type=int, default=100)
  parser.add_argument('--dtype', default='float32', choices=tuple(models_lib.COMPUTE_DTYPES))
  parser.add_argument('--num-runs', type=int, default=1, help='seed-vectorised runs per program')
  parser.add_argument('--steps', type=int, default=None, help='timed steps per row (default 20)')
  parser.add_argument('--json', default='', help='write every measurement to this file')
  parser.add_argument('--skip-table', action='store_true',
                      help='only the extra sections (then no alc_overhead line)')
  parser.add_argument('--mfu', action='store_true')
  parser.add_argument('--peer', action='store_true')
  parser.add_argument('--pairwise', action='store_true')
  parser.add_argument('--pairwise-sizes', default='100,256,512,1024,2048,4096')
  parser.add_argument('--vectorized', type=int, default=0, metavar='N')
  parser.add_argument('--levers', action='store_true')
  parser.add_argument('--lever-child', action='store_true', help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.width is None:
    args.width = QUICK_WIDTH if args.quick else 1.0
  if args.steps is None:
    args.steps = QUICK_STEPS if args.quick else 20
  return parser, args


def table_models_and_methods(parser, args):
  """(models, methods, added): the table's rows, checked against MODELS and METHODS; `added` are
  the methods alc_overhead needs that --methods lacked (in `methods` unless --skip-table)."""
  models = [m for m in args.models.split(',') if m]
  methods = [m for m in args.methods.split(',') if m]
  for m in models:
    if m not in MODELS:
      parser.error(f'unknown model {m!r}; choose from {",".join(MODELS)}')
  for m in methods:
    if m not in METHODS:
      parser.error(f'unknown method {m!r}; choose from {",".join(METHODS)}')
  added = [m for m in ('mean_teacher', 'mean_teacher_alc') if m not in methods]
  if not args.skip_table:
    methods += added  # alc_overhead needs both.
  return models, methods, added


def print_preamble(args, added):
  """Prints the machine, its load and the settings; returns the results dict they start."""
  print(f'machine: {machine()}', flush=True)
  before = uptime()
  print(f'uptime before: {before}')
  print(f'CPU set-up (alc_jax/cpu_setup.py): {cpu_set_up()}', flush=True)
  if args.quick:
    print(f'--quick: narrowed networks (width {args.width}, i.e. {args.width:g} x the published '
          f'channels) and {args.steps} timed steps per row; CPU-sized, not the paper\'s networks.')
  if not args.skip_table or args.vectorized or args.levers:
    print(f'settings: width {args.width:g}, batch {args.batch_size} '
          f'({max(1, args.batch_size // 10)} labeled), dtype {args.dtype}, runs {args.num_runs}, '
          f'{args.steps} timed steps after 1 warm-up; {NUM_BATCHES} batches fetched up front and '
          f'reused (input pipeline not timed).', flush=True)
  if added and not args.skip_table:
    print(f'added to --methods to measure alc_overhead: {",".join(added)}')
  return {'machine': machine(), 'args': vars(args), 'rows': [], 'uptime_before': before,
          'cpu_set_up': cpu_set_up()}


def prepare_run_dir(args, tmp):
  """The synthetic data set and a compilation cache private to this run, in `tmp`; returns the
  data set's path."""
  npz = os.path.join(tmp, 'synthetic.npz')
  # create_experiment compiles the state initialisation (~10 s on a 2-core CPU); rows of one
  # model share that program, so a compilation cache private to this run compiles it once per
  # (model, ALC or not). Every row's train step is a different program: the compile column is
  # never a cache hit.
  jax.config.update('jax_compilation_cache_dir', os.path.join(tmp, 'xla_cache'))
  jax.config.update('jax_persistent_cache_min_compile_time_secs', 0)
  write_synthetic_npz(npz, args.batch_size * max(1, args.num_runs, args.vectorized))
  return npz


def mfu_section(results):
  """--mfu: the f32 and bf16 matmul peaks, {dtype name: FLOP/s}. Measured before the rows, on
  the same device, so that MFU has a same-run reference."""
  n = 8192 if on_accelerator() else 2048
  peaks = {}
  for name, dtype in (('float32', jnp.float32), ('bfloat16', jnp.bfloat16)):
    peaks[name] = matmul_peak(dtype, n)
  print(f'matmul peak ({n}^3 jnp.dot): f32 {peaks["float32"] / 1e12:.3f} TFLOP/s, '
        f'bf16 {peaks["bfloat16"] / 1e12:.3f} TFLOP/s', flush=True)
  results['matmul_peak_flops'] = peaks
  return peaks


def table_section(args, npz, models, methods, mfu_peaks, results):
  """The models x methods table into results['rows'], then alc_overhead from the MT and MT + ALC
  steps of CNN-13 (or the first model) timed alternately."""
  rows = results['rows']
  overhead_model = 'cnn13' if 'cnn13' in models else models[0]
  print('\ntrain-step throughput (median step after compilation):', flush=True)
  for model in models:
    for method in methods:
      config = make_config(args, npz, model, method)
      # The MT and MT + ALC steps of the overhead model stay alive for alc_overhead.
      r = time_steps(config, args.steps, keep=model == overhead_model and
                     method in ('mean_teacher', 'mean_teacher_alc'))
      r.update(model=model, method=method, label=method_label(method), width=args.width,
               dtype=args.dtype, batch=args.batch_size, runs=args.num_runs)
      rows.append(r)
      print(f'  measured {model} {r["label"]}: {r["images_per_second"]:.1f} img/s', flush=True)
  print()
  print_table(rows, mfu_peaks)
  print(f'peak MiB = {rows[-1]["peak_kind"]} (process high-water mark so far); xla MiB = the '
        f'compiled step\'s arguments + outputs + temporaries; load = 1-minute load average '
        f'after the row (above {os.cpu_count()}: other processes shared the CPU).')
  # Before the extra sections, which would otherwise run beside two live train states.
  pair = {r['method']: r.pop('_runner') for r in rows if '_runner' in r}
  overhead, t_mt, t_alc = interleaved_ratio(pair['mean_teacher'], pair['mean_teacher_alc'],
                                            max(args.steps, OVERHEAD_STEPS))
  results.update(alc_overhead=overhead, alc_overhead_model=overhead_model,
                 alc_overhead_step_times_s={'mean_teacher': t_mt, 'mean_teacher_alc': t_alc})
  del pair
  gc.collect()
  if args.mfu:
    print('MFU = FLOPs per step (XLA cost analysis of the lowered step) / step time / matmul '
          'peak of the row\'s dtype.')


def levers_section(args, models, tmp, results):
  """--levers: run_levers on the CPU, into results['levers']; a note on GPU/TPU."""
  if on_accelerator():
    print('\n--levers: CPU only (alc_jax/cpu_setup.py changes nothing on GPU/TPU); skipped.')
  else:
    results['levers'] = run_levers(args, models[0], tmp)


def peer_section(args, models, tmp, results):
  """--peer: the PyTorch step, and ours / theirs for each MT CNN-13 row of this run."""
  print('\npeer (PyTorch, same Mean Teacher CNN-13 step):', flush=True)
  peer = run_peer(args, tmp)
  results['peer'] = peer
  # Ours: the table's MT CNN-13 row, and each --levers row if it measured CNN-13.
  ours = [('table', r) for r in results['rows']
          if r['model'] == 'cnn13' and r['method'] == 'mean_teacher']
  if models[0] == 'cnn13':
    ours += [(f'levers: {r["label"]}', r) for r in results.get('levers', [])]
  if peer and ours:
    results['peer_ratio'] = ours[0][1]['images_per_second'] / peer['images_per_second']
    print(f'MT CNN-13 width {args.width:g} batch {args.batch_size}, ours / theirs '
          f'({peer["images_per_second"]:.1f} img/s):')
    for name, r in ours:
      print(f'  {name:<36} {r["images_per_second"]:>8.1f} img/s  '
            f'{r["images_per_second"] / peer["images_per_second"]:.2f}')
  elif peer:
    print('no MT CNN-13 row in this run to compare against (add --models cnn13).')


def vectorized_section(args, npz, model, results):
  """--vectorized N: MT + ALC with N runs in one program (loop, then vmap) against N separate
  runs one after another, into results['vectorized']."""
  n = args.vectorized
  print(f'\nN runs: MT+ALC on {model}, {n} runs in one program (mapped by a loop, then by '
        f'vmap) vs {n} separate runs one after another (each compiles its own program):',
        flush=True)
  # Separate runs would each compile their own step: no cache hits for the repeated program.
  # JAX latches its first cache decision, so the cache must also be reset (a private API).
  jax.config.update('jax_enable_compilation_cache', False)
  try:
    from jax._src import compilation_cache  # pylint: disable=g-import-not-at-top
    compilation_cache.reset_cache()
  except (ImportError, AttributeError):
    print('  (could not reset the compilation cache: separate runs may hit it)')
  together = {}
  for mode in ('loop', 'vmap'):
    start = time.perf_counter()
    together[mode] = time_steps(make_config(args, npz, model, 'mean_teacher_alc', num_runs=n,
                                            run_batching=mode), args.steps)
    together[mode]['wall_s'] = time.perf_counter() - start
    print(f'  {n} runs in one program ({mode}): compiled in '
          f'{together[mode]["compile_s"]:.1f} s, {together[mode]["ms_per_step"]:.1f} ms/step',
          flush=True)
  seq, seq_wall = [], 0.0
  for i in range(n):
    start = time.perf_counter()
    seq.append(time_steps(make_config(args, npz, model, 'mean_teacher_alc', num_runs=1),
                          args.steps))
    seq_wall += time.perf_counter() - start
    print(f'  separate run {i + 1}/{n}: compiled in {seq[-1]["compile_s"]:.1f} s, '
          f'{seq[-1]["ms_per_step"]:.1f} ms/step', flush=True)
  images = n * args.batch_size * (args.steps + 2)  # Compile step + warm-up + timed steps.
  seq_step = statistics.median(t for r in seq for t in r['step_times_s'])
  auto = make_config(args, npz, model, 'mean_teacher_alc', num_runs=n)  # run_batching=auto.
  auto_mode = 'loop' if runs.use_run_loop(auto) else 'vmap'
  results['vectorized'] = {'num_runs': n, 'default': auto_mode, **together, 'sequential': seq,
                           'sequential_wall_s': seq_wall}
  print(f'{"mode":<32} {"img/s (steps)":>14} {"img/s (with compile)":>21} {"wall s":>8} '
        f'{"load":>5}')
  for mode, r in together.items():
    label = f'{n} runs in one program, {mode}' + ('*' if mode == auto_mode else '')
    print(f'{label:<32} {r["images_per_second"]:>14.1f} {images / r["wall_s"]:>21.1f} '
          f'{r["wall_s"]:>8.1f} {r["load1"]:>5.1f}')
  print(f'{f"{n} runs one after another":<32} {args.batch_size / seq_step:>14.1f} '
        f'{images / seq_wall:>21.1f} {seq_wall:>8.1f} {seq[-1]["load1"]:>5.1f}')
  for mode, r in together.items():
    speedup = r['images_per_second'] * seq_step / args.batch_size
    print(f'speed-up of {n} runs in one program ({mode}) over separate runs: {speedup:.2f}x '
          f'(steps), {seq_wall / r["wall_s"]:.2f}x (wall, with compilation and set-up)')
  print(f'* = what config.run_batching=auto picks here ({jax.default_backend()}).')


def pairwise_section(args, results):
  """--pairwise: pairwise_bench over --pairwise-sizes, into results['pairwise']."""
  sizes = [int(s) for s in args.pairwise_sizes.split(',') if s]
  print(f'\nALC pairwise term alone (alc_similarity + label_consistency, forward + backward, '
        f'D=128, K=10, float32), batch sharded over {jax.device_count()} device(s):',
        flush=True)
  prows = pairwise_bench(sizes)
  results['pairwise'] = prows
  print(f'{"B":>6} {"sharded":>7} {"ms":>9} {"B x B MiB":>10} {"xla temp MiB":>13} '
        f'{"peak MiB":>9}')
  for r in prows:
    print(f'{r["batch"]:>6} {str(r["sharded"]):>7} {r["ms"]:>9.3f} {r["bxb_mib"]:>10.2f} '
          f'{r["xla_temp_mib"]:>13.2f} {r["peak_mib"]:>9.0f}')
  print(f'B x B MiB = one float32 B x B matrix; peak = {prows[-1]["peak_kind"]} (process '
        f'high-water mark).')


def finish(args, results, t_start):
  """Prints the wall time and the load after the run, and writes --json."""
  results['wall_s'] = time.perf_counter() - t_start
  results['uptime_after'] = uptime()
  print(f'\ntotal wall time {results["wall_s"]:.0f} s')
  print(f'uptime after: {results["uptime_after"]}')
  if args.json:
    with open(args.json, 'w', encoding='utf-8') as f:
      json.dump(results, f, indent=1, default=float)
    print(f'wrote {args.json}')


def print_alc_overhead(args, results):
  """The alc_overhead lines; the last is `alc_overhead R`, which scripts read."""
  print(f'\nalc_overhead = ms/step(MT+ALC) / ms/step(MT) on {results["alc_overhead_model"]}, from '
        f'{max(args.steps, OVERHEAD_STEPS)} more steps of each, alternated (same background '
        f'load for both):')
  t_mt, t_alc = (statistics.median(results['alc_overhead_step_times_s'][m])
                 for m in ('mean_teacher', 'mean_teacher_alc'))
  print(f'MT {1e3 * t_mt:.1f} ms/step, MT+ALC {1e3 * t_alc:.1f} ms/step')
  print(f'alc_overhead {results["alc_overhead"]:.3f}')


def main():
  # First, before anything starts JAX's backend: the benchmark measures the set-up users get from
  # the entry points (alc_jax/cpu_setup.py), and a --levers row the one its ALC_JAX_CPU_DEFAULTS
  # asks for; importing alc_jax does not apply it.
  cpu_setup.configure()
  parser, args = parse_args()
  if args.lever_child:
    lever_child(args)
    return
  models, methods, added = table_models_and_methods(parser, args)
  t_start = time.perf_counter()
  results = print_preamble(args, added)
  # The sections run in this order: --levers, --peer and --vectorized see the table's memory
  # already freed, --peer compares against the table and --levers rows, and --vectorized turns
  # the compilation cache off for what follows it.
  with tempfile.TemporaryDirectory() as tmp:
    npz = prepare_run_dir(args, tmp)
    mfu_peaks = mfu_section(results) if args.mfu else {}
    if not args.skip_table:
      table_section(args, npz, models, methods, mfu_peaks, results)
    if args.levers:
      levers_section(args, models, tmp, results)
    if args.peer:
      peer_section(args, models, tmp, results)
    if args.vectorized:
      vectorized_section(args, npz, models[0], results)
    if args.pairwise:
      pairwise_section(args, results)
  finish(args, results, t_start)
  if 'alc_overhead' in results:  # Last, so that scripts can read the last line.
    print_alc_overhead(args, results)


if __name__ == '__main__':
  main()
