# (name, file, old, new, test files): the ALC head (Eq. 7-12, Table 8-9) and the augmentation.
T = 'tests/test_attention.py tests/test_alc_objectives.py'
A = 'tests/test_augment.py'
F = 'alc_jax/attention.py'
M = [
 ('se_no_residual', F, "return x + u[..., None, None, :] * x", "return u[..., None, None, :] * x", T),
 ('se_no_relu', F, "u = nn.relu(nn.Dense(max(channels", "u = (nn.Dense(max(channels", T),
 ('mlp_no_relu', F, "return nn.Dense(self.dim, name='out')(nn.relu(nn.Dense(", "return nn.Dense(self.dim, name='out')((nn.Dense(", T),
 ('max_avg_swapped', F, "pairs = {'max_avg': [(x_max, x_avg)]", "pairs = {'max_avg': [(x_avg, x_max)]", T),
 ('gaussian_offset', F, "jnp.maximum(2.0 - 2.0 * cosine, 0.0)", "jnp.maximum(1.0 - 2.0 * cosine, 0.0)", T),
 ('pairwise_self_kept', F, "return s if include_self else s * (1.0 - jnp.eye(x.shape[-2], dtype=s.dtype))", "return s", T),
 ('mean_of_two_summed', F, "for z in logits) / len(logits)", "for z in logits) / 1", T),
 ('gmp_ridge_ignored', F, "+ ridge * jnp.eye(h * w, dtype=jnp.float32)", "+ jnp.eye(h * w, dtype=jnp.float32)", T),
 ('spread_ddof1', F, "var = jnp.sum(jnp.where(keep, (logits - mean[..., None]) ** 2, 0.0), axis=-1) / n", "var = jnp.sum(jnp.where(keep, (logits - mean[..., None]) ** 2, 0.0), axis=-1) / (n - 1)", T),
 ('temperature_no_floor', F, "return self.temperature_floor + nn.softplus(raw)", "return nn.softplus(raw)", T),
 ('head_not_detached', F, "    if self.detach_input:\n", "    if False:\n", T),
 ('flip_prob', 'alc_jax/data/augment.py', "jax.random.bernoulli(flip_rng, 0.5,", "jax.random.bernoulli(flip_rng, 0.9,", A),
 ('noise_unscaled', 'alc_jax/data/augment.py', "noise_std * jax.random.normal(k, flat, images.dtype)", "jax.random.normal(k, flat, images.dtype)", A),
]
