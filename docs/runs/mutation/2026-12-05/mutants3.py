# (name, file, old, new, test files)
S, SP, A, T, R = 'tests/test_sampler.py', 'tests/test_splits.py', 'tests/test_augment.py', 'tests/test_train.py', 'tests/test_reporting.py'
M = [
 ('sampler_same_pass', 'alc_jax/data/sampler.py', "default_rng([self.seed, stream, k])", "default_rng([self.seed, stream, 0])", S),
 ('sampler_stream_seed', 'alc_jax/data/sampler.py', "default_rng([self.seed, stream, k])", "default_rng([self.seed, 0, k])", S),
 ('sampler_unl_offset', 'alc_jax/data/sampler.py', "self._stream_slice(_UNLABELED_STREAM, step * n_unl, n_unl)", "self._stream_slice(_UNLABELED_STREAM, step * n_lab, n_unl)", S),
 ('sampler_label_leak', 'alc_jax/data/sampler.py', "labels.append(np.where(is_labeled, y_train[idx], -1).astype(np.int32))", "labels.append(y_train[idx].astype(np.int32))", S),
 ('aug_edge', 'alc_jax/data/augment.py', "mode='reflect')", "mode='edge')", A),
 ('aug_maxshift', 'alc_jax/data/augment.py', "0, 2 * translate + 1)", "0, 2 * translate)", A),
 ('aug_vflip', 'alc_jax/data/augment.py', "x[:, :, ::-1, :]", "x[:, ::-1, :, :]", A),
 ('split_overlap', 'alc_jax/data/splits.py', "labeled.append(members[held_out[c]:held_out[c] + wanted[c]])", "labeled.append(members[:wanted[c]])", SP),
 ('split_remainder', 'alc_jax/data/splits.py', "counts[order[:total - counts.sum()]] += 1", "counts[order[:max(total - counts.sum() - 1, 0)]] += 1", SP),
 ('eval_teacher_stats', 'alc_jax/train.py', "models.append((ema_model, teacher.params, teacher.batch_stats))", "models.append((ema_model, teacher.params, state.batch_stats))", T),
 ('eval_top5_mask', 'alc_jax/train.py', "out['top5_correct'][name] = jnp.sum(hit & mask)", "out['top5_correct'][name] = jnp.sum(hit)", T),
 ('eval_class_mask', 'alc_jax/train.py', "of_class = (labels[:, None] == jnp.arange(logits.shape[-1])) & mask[:, None]", "of_class = (labels[:, None] == jnp.arange(logits.shape[-1]))", T),
 ('report_best_min', 'alc_jax/reporting.py', "best = {k: np.max([row[k]", "best = {k: np.min([row[k]", R),
]
