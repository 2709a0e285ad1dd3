# Round 32: multi-host guards of the trainer (test 7's second part), the one atomic writer, the
# paper's numbers, and the similarity of process 0's rows only (the code before 2b1ebc7).
REL = 'tests/test_reliability.py'
IO = 'tests/test_workdir_io.py tests/test_user_data.py tests/test_inference.py'
CFG = 'tests/test_configs.py'
M = [
  ('mh_metrics_of_every_process_in_one_file', 'alc_jax/reporting.py',
   "    return JsonlWriter(f'{workdir}/metrics.jsonl' if jax.process_index() == 0",
   "    return JsonlWriter(f'{workdir}/metrics.jsonl' if True", REL),
  ('mh_every_process_prints_progress', 'alc_jax/reporting.py',
   '    if jax.process_index() > 0 or (not force', '    if (not force', REL),
  ('mh_results_by_the_last_process', 'alc_jax/train.py',
   """  if jax.process_index() == 0:
    workdir_io.write_json(os.path.join(workdir, 'results.json'), results)""",
   """  if jax.process_index() == jax.process_count() - 1:
    workdir_io.write_json(os.path.join(workdir, 'results.json'), results)""", REL),
  ('mh_similarity_of_process_0_rows', 'alc_jax/train.py',
   'first_batch = jax.tree.map(np.asarray, multihost_utils.process_allgather(local, tiled=True))',
   'first_batch = local', REL),
  ('mh_evaluations_by_every_process', 'alc_jax/train.py',
   """    if jax.process_index() == 0:
      workdir_io.write_json(self.evaluations_path, self.history)""",
   """    if True:
      workdir_io.write_json(self.evaluations_path, self.history)""", REL),
  ('io_fixed_temporary_name', 'alc_jax/workdir_io.py',
   "  fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + '.', suffix='.tmp',\n                             dir=os.path.dirname(path) or '.')",
   "  tmp = f'{path}.tmp'\n  fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)", IO),
  ('io_mkstemp_mode_kept', 'alc_jax/workdir_io.py', '    os.chmod(tmp, _FILE_MODE)\n', '', IO),
  ('io_mode_ignores_umask', 'alc_jax/workdir_io.py', '  return 0o666 & ~umask', '  return 0o644', IO),
  ('io_temporary_left_on_failure', 'alc_jax/workdir_io.py',
   '''  except BaseException:
    try:
      os.remove(tmp)
    except OSError:
      pass
    raise''', '''  except BaseException:
    raise''', IO),
  ('paper_table2_digits_swapped', 'launch/paper_numbers.py', "'mean_teacher': {250: (78.61, 0.14)",
   "'mean_teacher': {250: (78.16, 0.14)", CFG),
  ('paper_table6_last', 'launch/paper_numbers.py', "'pi_model_alc_soft': (83.13, 79.55, 74.63),",
   "'pi_model_alc_soft': (83.13, 79.55, 74.36),", CFG),
  ('paper_table8_std', 'launch/paper_numbers.py', "'e': {'svhn': (93.18, 0.46), 'cifar10': (80.55, 0.43)}",
   "'e': {'svhn': (93.18, 0.46), 'cifar10': (80.55, 0.34)}", CFG),
  ('paper_table4_top5', 'launch/paper_numbers.py', "'pi_model': (16.79, 33.93),", "'pi_model': (16.79, 33.39),", CFG),
  ('paper_table9_rows_swapped', 'launch/paper_numbers.py', """    'sample': (81.52, 0.21),
    'gaussian': (81.43, 0.77),""", """    'sample': (81.43, 0.77),
    'gaussian': (81.52, 0.21),""", CFG),
]
