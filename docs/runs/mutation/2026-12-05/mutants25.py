# (name, file, old, new, test files): train/ + test/ folders, the runs' mapping.
U = 'alc_jax/data/user_files.py'
R = 'alc_jax/runs.py'
TU = 'tests/test_datasets.py tests/test_user_data.py'
TR = 'tests/test_train.py'
M = [
 ('uf_both_layouts', U, "    if os.path.isdir(os.path.join(path, 'train')):\n", "    if False:\n", TU),
 ('uf_classes_differ', U, "  if classes['train'] != classes['test']:\n", "  if False:\n", TU),
 ('uf_mode_rgba', U, "        if mode not in ('L', 'RGB'):\n", "        if mode not in ('L', 'RGB', 'RGBA'):\n", TU),
 ('uf_size_check', U, "        elif size != reference[2]:\n", "        elif False:\n", TU),
 ('uf_mode_check', U, "        elif mode != reference[1]:\n", "        elif False:\n", TU),
 ('uf_empty_class', U, "      if split == 'train' and not files:\n", "      if False:\n", TU),
 ('uf_hidden_files', U, "if f.lower().endswith(TRAIN_TEST_EXTENSIONS) and not f.startswith('.'))", "if f.lower().endswith(TRAIN_TEST_EXTENSIONS))", TU),
 ('runs_loop_run0', R, "    outs = [fn(*(a if ax is None else jax.tree.map(lambda x, r=r: x[r], a)", "    outs = [fn(*(a if ax is None else jax.tree.map(lambda x, r=r: x[0], a)", TR),
 ('runs_loop_broadcast', R, "    outs = [fn(*(a if ax is None else jax.tree.map(lambda x, r=r: x[r], a)", "    outs = [fn(*(jax.tree.map(lambda x, r=r: x[r], a)", TR),
 ('runs_auto_vmap', R, "    return config.num_runs > 1 and jax.default_backend() == 'cpu'", "    return False", TR),
]
