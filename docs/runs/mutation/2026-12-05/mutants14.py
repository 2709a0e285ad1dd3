# (name, file, old, new, test files): launch/aggregate.py, the numbers docs/results.md reports.
A = 'launch/aggregate.py'
T = 'tests/test_launch.py::test_aggregate_empty_root_and_broken_results tests/test_launch.py::test_aggregate_names_the_hosts_the_jobs_ran_on tests/test_launch.py::test_aggregate_pairs_rows_by_seed_against_the_reference_rows tests/test_launch.py::test_aggregate_per_class_accuracy_ranks_each_runs_classes_by_its_labels tests/test_launch.py::test_aggregate_reads_the_model_each_run_names tests/test_launch.py::test_aggregate_reports_the_validation_split_when_asked tests/test_launch.py::test_aggregate_tables_and_plots tests/test_launch.py::test_budget_curve_joins_rows_across_roots_and_plots tests/test_launch.py::test_paired_cells_give_the_95_percent_t_interval_of_the_mean_difference tests/test_launch.py::test_w2_groups_keep_other_grid_values_apart'
M = [
 ('ag_pm_ddof', A, "return f'{np.mean(values):.2f} ± {np.std(values):.2f}'", "return f'{np.mean(values):.2f} ± {np.std(values, ddof=1):.2f}'", T),
 ('ag_t_ddof0', A, "* np.std(differences, ddof=1) / np.sqrt(n)", "* np.std(differences) / np.sqrt(n)", T),
 ('ag_t_quantile', A, "stats.t.ppf((1 + confidence) / 2, n - 1)", "stats.t.ppf(confidence, n - 1)", T),
 ('ag_t_df', A, "stats.t.ppf((1 + confidence) / 2, n - 1)", "stats.t.ppf((1 + confidence) / 2, n)", T),
 ('ag_pair_seed_only', A, "for i, key in enumerate(zip(seeds, run.results.get('split_seeds', seeds))):", "for i, key in enumerate(zip(seeds, seeds)):", T),
 ('ag_rank_ascending', A, "order = np.argsort(-prior, axis=1, kind='stable')", "order = np.argsort(prior, axis=1, kind='stable')", T),
 ('ag_half_overlap', A, "return ranked[..., :half].mean(-1), ranked[..., -half:].mean(-1)", "return ranked[..., :half + 1].mean(-1), ranked[..., -half:].mean(-1)", T),
 ('ag_diff_sign', A, "else f'{np.mean(acc) - reported.mean:+.2f}')", "else f'{reported.mean - np.mean(acc):+.2f}')", T),
 ('ag_pair_reverse', A, "cells = [_paired_cell([acc - base[k][0] for k, (acc, _) in pairs])]", "cells = [_paired_cell([base[k][0] - acc for k, (acc, _) in pairs])]", T),
 ('ag_which_model', A, "  if 'reported_model' in results:  # The run says which model its method reports.\n    return results['reported_model']\n", "", T),
 ('ag_ema_legacy', A, "    return 'teacher'  # An older FixMatch run: its EMA was recorded as 'teacher'.", "    return 'ema'", T),
 ('ag_mean_curve_union', A, "common = sorted(set.intersection(*(set(c) for c in per_run))) if per_run else []", "common = sorted(set.union(*(set(c) for c in per_run))) if per_run else []", T),
 ('ag_mean_curve_steps', A, "per_run.append({row['step'] / spe: row[key]", "per_run.append({row['step']: row[key]", T),
 ('ag_checkpoints_walked', A, "dirs[:] = sorted(d for d in dirs if d != 'checkpoints')", "dirs[:] = sorted(dirs)", T),
 ('ag_ratio_experiment', A, "  if results.get('imbalance_ratio', 1) != 1:\n    experiment = f\"{stem} (1:{results['imbalance_ratio']:g})\"\n", "", T),
 ('ag_prior_balanced', A, "  if np.allclose(prior, prior[:, :1]):\n    return None\n", "", T),
]
