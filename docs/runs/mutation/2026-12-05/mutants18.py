# (name, file, old, new, test files): results.json (final, best, summary) and image folders' labels.
R = 'alc_jax/reporting.py'
L = 'alc_jax/data/labeled_folder.py'
TR = 'tests/test_reporting.py tests/test_train_end_to_end.py'
TL = 'tests/test_user_data.py tests/test_user_path.py'
M = [
 ('rp_best_min', R, "best = {k: np.max([row[k] for row in history if k in row], axis=0) for k in final}", "best = {k: np.min([row[k] for row in history if k in row], axis=0) for k in final}", TR),
 ('rp_best_over_runs', R, "best = {k: np.max([row[k] for row in history if k in row], axis=0) for k in final}", "best = {k: np.max([row[k] for row in history if k in row], axis=(0, 1)) * np.ones_like(final[k]) for k in final}", TR),
 ('rp_final_first', R, "last = {k: v for k, v in history[-1].items() if k != 'step'}", "last = {k: v for k, v in history[0].items() if k != 'step'}", TR),
 ('rp_summary_ddof', R, "for stat, fn in (('mean', np.mean), ('std', np.std))}", "for stat, fn in (('mean', np.mean), ('std', lambda a: np.std(a, ddof=1)))}", TR),
 ('rp_epochs', R, "'steps': steps, 'epochs': steps / steps_per_epoch,", "'steps': steps, 'epochs': steps // steps_per_epoch,", TR),
 ('lf_index_order', L, "index = {name: label for label, name in enumerate(class_names)}", "index = {name: label for label, name in enumerate(sorted(class_names, reverse=True))}", TL),
 ('lf_unknown_ok', L, "  if unknown:\n    raise DataError(\n        f'Image folder data set {root}: {split}/ has the class folder(s) {unknown}", "  if False:\n    raise DataError(\n        f'Image folder data set {root}: {split}/ has the class folder(s) {unknown}", TL),
 ('lf_size_tiebreak', L, "size = max(counts, key=lambda s: (counts[s], s[0] * s[1], s))", "size = min(counts, key=lambda s: (-counts[s], s[0] * s[1], s))", TL),
 ('lf_hidden_class', L, "if os.path.isdir(os.path.join(directory, d)) and not d.startswith('.'))", "if os.path.isdir(os.path.join(directory, d)))", TL),
]
