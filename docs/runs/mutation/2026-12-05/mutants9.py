# (name, file, old, new, test files): RandAugment, normalisation / ZCA, the backbones.
R = 'alc_jax/data/randaugment.py'
TR = 'tests/test_randaugment.py tests/test_fixmatch.py'
N = 'alc_jax/data/normalization.py'
TN = 'tests/test_augment.py tests/test_datasets.py tests/test_pipeline.py'
C = 'alc_jax/models/cnn13.py'
W = 'alc_jax/models/wrn.py'
RS = 'alc_jax/models/resnet.py'
TM = 'tests/test_models.py'
M = [
 ('ra_apply_prob', R, 'APPLY_PROBABILITY = 0.5', 'APPLY_PROBABILITY = 0.7', TR),
 ('ra_level_stop', R, '_LEVEL_MIN, _LEVEL_STOP = 1, 10', '_LEVEL_MIN, _LEVEL_STOP = 1, 11', TR),
 ('ra_level_min', R, '_LEVEL_MIN, _LEVEL_STOP = 1, 10', '_LEVEL_MIN, _LEVEL_STOP = 0, 10', TR),
 ('ra_enhance_bias', R, 'return _float_parameter(level, 0.9) + 0.05', 'return _float_parameter(level, 0.9) + 0.1', TR),
 ('ra_translate_hw', R, "int(_float_parameter(v, 0.3) * w), True),\n    'TranslateY'", "int(_float_parameter(v, 0.3) * h), True),\n    'TranslateY'", TR),
 ('ra_no_sign_rotate', R, "'Rotate': _PoolOp(rotate, lambda v, h, w: _int_parameter(v, 30), True)", "'Rotate': _PoolOp(rotate, lambda v, h, w: _int_parameter(v, 30), False)", TR),
 ('ra_solarize_le', R, 'jnp.where(image < magnitude, image, 255. - image)', 'jnp.where(image <= magnitude, image, 255. - image)', TR),
 ('ra_posterize_bits', R, 'mask = ~((jnp.left_shift(1, 8 - bits)) - 1)', 'mask = ~((jnp.left_shift(1, 7 - bits)) - 1)', TR),
 ('ra_contrast_round', R, 'mean = ((2 * total + count) // (2 * count))', 'mean = ((2 * total) // (2 * count))', TR),
 ('ra_luma_offset', R, 'luma = (jnp.sum(rgb * weights, axis=-1, keepdims=True) + 0x8000) >> 16', 'luma = (jnp.sum(rgb * weights, axis=-1, keepdims=True)) >> 16', TR),
 ('ra_blend_no_clip', R, 'return jnp.floor(jnp.clip(mixed, 0., 255.))', 'return jnp.floor(mixed)', TR),
 ('ra_blend_round', R, 'return jnp.floor(jnp.clip(mixed, 0., 255.))', 'return jnp.round(jnp.clip(mixed, 0., 255.))', TR),
 ('ra_affine_inside', R, 'inside = (x_in >= 0) & (x_in < width)', 'inside = (x_in >= 0) & (x_in <= width)', TR),
 ('ra_rotate_dir', R, "angle = -jnp.deg2rad(jnp.mod(jnp.asarray(magnitude, jnp.float32), 360.))", "angle = jnp.deg2rad(jnp.mod(jnp.asarray(magnitude, jnp.float32), 360.))", TR),
 ('ra_smooth_half', R, 'total = np.float32(0.5) + row_sum', 'total = np.float32(0.) + row_sum', TR),
 ('ra_equalize_step', R, 'lut = jnp.minimum((step // 2 + below) // jnp.maximum(step, 1), 255)', 'lut = jnp.minimum((below) // jnp.maximum(step, 1), 255)', TR),
 ('ra_autocontrast_artefact', R, 'lut = lut - (found & (scaled % span == 0)).astype(jnp.int32)', 'lut = lut', TR),
 ('ra_cutout_half', R, 'top = jax.random.randint(y_key, (), 0, height) - size // 2', 'top = jax.random.randint(y_key, (), 0, height)', TR),
 ('ra_cutout_fill', R, 'CUTOUT_FILL = 127.', 'CUTOUT_FILL = 128.', TR),
 ('ra_cutout_frac', R, 'CUTOUT_SIZE_FRACTION = 0.5', 'CUTOUT_SIZE_FRACTION = 0.25', TR),
 ('ra_same_key', R, 'keys = jax.random.split(key, images.shape[0])\n  return jax.vmap', 'keys = jnp.stack([key] * images.shape[0])\n  return jax.vmap', TR),
 ('ra_policy_cutout_key', R, 'policy_key, cutout_key = jax.random.split(key)', 'policy_key = cutout_key = key', TR),
 ('ra_not_applied_keeps', R, 'op_indices = jnp.where(applied, op_indices, _IDENTITY_INDEX)', 'op_indices = op_indices', TR),
 ('norm_std_ddof', N, 'var = (counts * (values - mean) ** 2).sum() / total', 'var = (counts * (values - mean) ** 2).sum() / (total - 1)', TN),
 ('norm_zca_eps', N, 'ZCA_EPSILON = 0.1', 'ZCA_EPSILON = 0.01', TN),
 ('norm_zca_no_mu', N, '    z = standardised(images[start:start + chunk_size]) - mu\n', '    z = standardised(images[start:start + chunk_size])\n', TN),
 ('norm_zca_sqrt', N, 'whiten = (eigvecs * (1.0 / np.sqrt(eigvals + epsilon))) @ eigvecs.T', 'whiten = (eigvecs * (1.0 / (eigvals + epsilon))) @ eigvecs.T', TN),
 ('norm_zca_mean_ignored', N, '      flat = flat - jnp.asarray(zca_mean, jnp.float32)\n', '      pass\n', TN),
 ('norm_divide_255', N, 'x = jnp.asarray(images).astype(jnp.float32) / 255.0', 'x = jnp.asarray(images).astype(jnp.float32) / 256.0', TN),
 ('cnn_slope', C, 'return nn.leaky_relu(x, negative_slope=0.1)', 'return nn.leaky_relu(x, negative_slope=0.2)', TM),
 ('cnn_bn_eps', C, 'momentum=module.bn_momentum, epsilon=1e-3,', 'momentum=module.bn_momentum, epsilon=1e-5,', TM),
 ('cnn_init_fan_in', C, "conv_init = nn.initializers.variance_scaling(2.0, 'fan_out', 'normal')", "conv_init = nn.initializers.variance_scaling(2.0, 'fan_in', 'normal')", TM),
 ('cnn_gap_max', C, 'x = jnp.mean(features, axis=(1, 2))', 'x = jnp.max(features, axis=(1, 2))', TM),
 ('cnn_dropout_once', C, "    x = max_pool_2x2(x)\n    x = nn.Dropout(self.dropout, deterministic=not train)(x)\n    x = conv_bn_lrelu(self, x, 512", "    x = max_pool_2x2(x)\n    x = conv_bn_lrelu(self, x, 512", TM),
 ('cnn_pool_grad_last', C, 'first_max = jnp.argmax(windows, axis=-1)[..., None] == jnp.arange(4)', 'first_max = (3 - jnp.argmax(windows[..., ::-1], axis=-1))[..., None] == jnp.arange(4)', TM),
 ('wrn_slope', W, 'return nn.leaky_relu(x, negative_slope=0.1)', 'return nn.leaky_relu(x, negative_slope=0.2)', TM),
 ('wrn_abr_swapped', W, 'activate_before_residual=(group == 0 and i == 0)', 'activate_before_residual=(group == 1 and i == 0)', TM),
 ('wrn_no_final_bn', W, "features = lrelu(norm(name='bn_last')(x)).astype(jnp.float32)", "features = lrelu(x).astype(jnp.float32)", TM),
 ('resnet_bn_eps', RS, 'epsilon=1e-5, dtype=self.dtype)', 'epsilon=1e-3, dtype=self.dtype)', TM),
 ('resnet_no_final_relu', RS, 'return nn.relu(residual + y)', 'return residual + y', TM),
]
