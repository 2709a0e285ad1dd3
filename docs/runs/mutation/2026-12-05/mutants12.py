# (name, file, old, new, test files): the sampler's batches, hosts.json, workdir writes, the
# Fashion-MNIST IDX reader, the decoded-image cache.
S = 'alc_jax/data/sampler.py'
H = 'alc_jax/host.py'
W = 'alc_jax/workdir_io.py'
F = 'alc_jax/data/fashion_mnist.py'
D = 'alc_jax/data/decoded_cache.py'
TS = 'tests/test_sampler.py'
TH = 'tests/test_host.py'
TW = 'tests/test_workdir_io.py tests/test_resume_safety.py'
TF = 'tests/test_datasets.py'
TD = 'tests/test_user_data.py'
M = [
 ('sm_eval_pad_image', S, '    image[~mask] = 0\n', '', TS),
 ('sm_eval_pad_label', S, "'label': np.where(mask, y[safe], -1).astype(np.int32)", "'label': y[safe].astype(np.int32)", TS),
 ('sm_rows_all', S, '      idx, is_labeled = idx[rows], is_labeled[rows]\n', '', TS),
 ('sm_label_leak', S, "labels.append(np.where(is_labeled, y_train[idx], -1).astype(np.int32))", "labels.append(y_train[idx].astype(np.int32))", TS),
 ('sm_local_rows', S, 'return slice(process_index * local, (process_index + 1) * local)', 'return slice(0, local)', TS),
 ('host_dump_flags', H, "                if not f.startswith('--xla_dump'))", "                )", TH),
 ('host_always_append', H, '  if last is None or changed:\n', '  if True:\n', TH),
 ('host_keep_later', H, "hosts = [h for h in _read(path) if h['from_step'] < start_step] if start_step else []", "hosts = list(_read(path)) if start_step else []", TH),
 ('host_isa_order', H, "VECTOR_ISAS = ('avx512f', 'avx2', 'avx', 'sse4_2', 'asimd')", "VECTOR_ISAS = ('avx2', 'avx512f', 'avx', 'sse4_2', 'asimd')", TH),
 ('host_dict_all_keys', H, 'return any(before[k] != now[k] for k in before.keys() & now.keys())', 'return before != now', TH),
 ('host_all_processes_write', H, '  if jax.process_index() == 0:\n    workdir_io.write_json(path, hosts)', '  if True:\n    workdir_io.write_json(path, hosts)', TH),
 ('io_not_atomic', W, "  tmp = f'{path}.tmp'\n", "  tmp = path\n", TW),
 ('idx_label_range', F, '    if labels.size and labels.max() >= NUM_CLASSES[\'fashion_mnist\']:\n', '    if False:\n', TF),
 ('idx_count_mismatch', F, '    if images.shape[0] != labels.shape[0]:\n', '    if False:\n', TF),
 ('idx_size_check', F, '  if len(raw) - header_len != size:\n', '  if len(raw) - header_len < size:\n', TF),
 ('cache_key_no_mtime', D, "digest.update(f'\\n{name}\\t{stat.st_size}\\t{stat.st_mtime_ns}'.encode())", "digest.update(f'\\n{name}\\t{stat.st_size}'.encode())", TD),
 ('cache_key_no_size', D, "json.dumps([_FORMAT_VERSION, list(size), mode, RESAMPLE,", "json.dumps([_FORMAT_VERSION, mode, RESAMPLE,", TD),
 ('cache_shared_tag', D, "(cache_dir or _default_fallback(), f'{root_tag}-')]", "(cache_dir or _default_fallback(), '')]", TD),
]
# Round 11's three pipeline survivors against tests/test_pipeline.py's new cases.
import sys as _sys
_sys.path.insert(0, '/tmp/mutrun')
from mutants10 import M as _M10
M += [(n, f, old, new, 'tests/test_pipeline.py') for n, f, old, new, _ in _M10
      if n in ('pl_eval_examples', 'pl_wanted_no_val', 'pl_no_prefetch')]
