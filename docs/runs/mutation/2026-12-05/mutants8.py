# (name, file, old, new, test files): predict / evaluate / export a trained model.
T = 'tests/test_inference.py'
I = 'alc_jax/inference.py'
M = [
 ('inf_reported_is_student', I, "weights = info['reported_model'] if weights == 'reported' else weights", "weights = 'student' if weights == 'reported' else weights", T),
 ('inf_run_zero', I, "variables = jax.tree.map(lambda a: a[run], {'params'", "variables = jax.tree.map(lambda a: a[0], {'params'", T),
 ('inf_run_range', I, "  if not 0 <= run < config.num_runs:\n", "  if False:\n", T),
 ('inf_pad_rows_kept', I, "out.append(np.asarray(probabilities)[:len(chunk)])", "out.append(np.asarray(probabilities))", T),
 ('inf_logits_not_probs', I, "return jax.nn.softmax(logits.astype(jnp.float32), axis=-1)", "return logits.astype(jnp.float32)", T),
 ('inf_float_images', I, "  if images.dtype != np.uint8:\n    raise InferenceError(\n        f'images have dtype", "  if False:\n    raise InferenceError(\n        f'images have dtype", T),
 ('inf_no_resize', I, "  if images.shape[1:] == tuple(image_shape):\n    return images\n", "  if True:\n    return images\n", T),
 ('inf_weights_missing', I, "  if weights not in info['models']:\n", "  if False:\n", T),
]
