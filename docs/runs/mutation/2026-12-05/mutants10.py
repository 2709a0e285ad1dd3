# (name, file, old, new, test files): the data pipelines (in memory, TFDS, ImageNet) and export.
I = 'alc_jax/data/imagenet.py'
P = 'alc_jax/data/pipeline.py'
TF = 'alc_jax/data/tfds_data.py'
S = 'alc_jax/data/sampler.py'
E = 'alc_jax/export.py'
TD = 'tests/test_datasets.py tests/test_pipeline.py'
TE = 'tests/test_inference.py'
M = [
 ('in_crop_padding', I, 'CROP_PADDING = 32', 'CROP_PADDING = 0', TD),
 ('in_center_offset', I, 'return tf.stack([(height - side + 1) // 2, (width - side + 1) // 2, side, side])', 'return tf.stack([0, 0, side, side])', TD),
 ('in_no_flip', I, 'return tf.image.stateless_random_flip_left_right(image, seeds[1])', 'return image', TD),
 ('in_unlabeled_keeps_label', I, "      label = tf.constant(-1, tf.int32)\n", "      label = tf.cast(example['label'], tf.int32)\n", TD),
 ('in_labeled_flag', I, "return {'image': image, 'label': label, 'labeled': tf.constant(labeled)}", "return {'image': image, 'label': label, 'labeled': tf.constant(True)}", TD),
 ('in_stream_order', I, "lambda a, b: {k: tf.concat([a[k], b[k]], axis=0) for k in a})", "lambda a, b: {k: tf.concat([b[k], a[k]], axis=0) for k in a})", TD),
 ('in_same_stream_seed', I, 'process_count, 1, local_unlabeled, image_size, False,', 'process_count, 0, local_unlabeled, image_size, False,', TD),
 ('in_shard_all', I, 'shard = tfds.split_for_jax_process(split, process_index=process_index,\n                                     process_count=process_count)', 'shard = split', TD),
 ('in_eval_pad_mask', I, "np.full((rows,) + v.shape[1:], -1 if k == 'label' else 0,", "np.full((rows,) + v.shape[1:], -1 if k == 'label' else 1,", TD),
 ('in_eval_num_batches', I, 'num_batches = math.ceil(math.ceil(num_examples / process_count) / local)', 'num_batches = math.ceil(num_examples / process_count / local)', TD),
 ('in_eval_no_extra', I, '    for _ in range(count, num_batches):\n', '    for _ in range(count, count):\n', TD),
 ('in_round', I, 'return tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)', 'return tf.cast(tf.clip_by_value(image, 0.0, 255.0), tf.uint8)', TD),
 ('in_seed_ignores_step', P, 'seed=self.seeds[0] * 1_000_003 + start_step, process_index=proc', 'seed=self.seeds[0] * 1_000_003, process_index=proc', TD),
 ('pl_priors_unlabeled', P, 'np.bincount(data.y_train[s.labeled], minlength=self.num_classes) / len(s.labeled)', 'np.bincount(np.maximum(data.y_train[np.concatenate([s.labeled, s.unlabeled])], 0), minlength=self.num_classes) / (len(s.labeled) + len(s.unlabeled))', TD),
 ('pl_split_seed_fixed', P, 'self.split_seeds = [split_seed if split_seed >= 0 else s for s in self.seeds]', 'self.split_seeds = [s for s in self.seeds]', TD),
 ('pl_eval_examples', P, "      n = n if n > 0 else data.num_test\n      x, y = data.x_test[:n], data.y_test[:n]", "      x, y = data.x_test, data.y_test", TD),
 ('pl_val_from_run1', P, 'idx = self.splits[0].validation', 'idx = self.splits[-1].validation', TD),
 ('pl_supervised_batch', P, "self.labeled_batch_size = (config.batch_size if methods.get(config.method).labeled_only\n                               else config.labeled_batch_size)", "self.labeled_batch_size = config.labeled_batch_size", TD),
 ('pl_wanted_no_val', P, 'wanted = dc.num_labels + dc.validation_size', 'wanted = dc.num_labels', TD),
 ('pl_no_prefetch', P, 'while len(self._ahead) <= self._size:', 'while len(self._ahead) < 1:', TD),
 ('tf_label_range', TF, "if num_classes is not None and labels.size and (labels.min() < 0 or labels.max() >= num_classes):", "if False:", TD),
 ('tf_download_policy', TF, "return policy not in ('0', 'false', 'no')", "return True", TD),
 ('ex_platforms', E, "'platforms': list(exported.platforms),", "'platforms': ['cpu'],", TE),
 ('ex_class_names', E, "info = {'class_names': list(model.labels),", "info = {'class_names': sorted(model.labels),", TE),
 ('ex_fixed_batch', E, "batch, = jax.export.symbolic_shape('n')", "batch = 2", TE),
 ('ex_readme_weights', E, 'num_classes=model.num_classes, weights=model.weights, run=model.run,', "num_classes=model.num_classes, weights='student', run=model.run,", TE),
]
