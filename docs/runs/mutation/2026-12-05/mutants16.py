# (name, file, old, new, test files): the training loop, its metrics, NaN guard and optimizer.
T = 'alc_jax/train.py'
TT = 'tests/test_train.py tests/test_train_end_to_end.py tests/test_resume_safety.py'
M = [
 ('tr_runs_summed', T, "means = {k: jnp.mean(v.astype(jnp.float32)) for k, v in metrics.items()}", "means = {k: jnp.sum(v.astype(jnp.float32)) for k, v in metrics.items()}", TT),
 ('tr_flag_resets', T, "'nonfinite': jax.tree.map(jnp.logical_or, totals['nonfinite'], bad),", "'nonfinite': bad,", TT),
 ('tr_no_count_divide', T, "means = {k: float(v) / count for k, v in totals['sum'].items()}", "means = {k: float(v) for k, v in totals['sum'].items()}", TT),
 ('tr_totals_not_reset', T, "    return jax.tree.map(jnp.zeros_like, totals)\n", "    return totals\n", TT),
 ('tr_ckpt_no_guard', T, "  _check_finite(nonfinite_names(jax.device_get(totals['nonfinite'])), step, log.exp.config)\n", "", TT),
 ('tr_log_no_guard', T, "    means, bad = read_metrics(totals)\n    _check_finite(bad, step, self.config)\n", "    means, bad = read_metrics(totals)\n", TT),
 ('tr_nesterov_off', T, "optax.sgd(schedule, momentum=config.momentum, nesterov=config.nesterov)]", "optax.sgd(schedule, momentum=config.momentum, nesterov=False)]", TT),
 ('tr_decay_after_sgd', T, "  parts = [optax.add_decayed_weights(config.weight_decay),  # Coupled L2, as torch SGD's.\n           optax.sgd(schedule, momentum=config.momentum, nesterov=config.nesterov)]", "  parts = [optax.sgd(schedule, momentum=config.momentum, nesterov=config.nesterov),\n           optax.add_decayed_weights(config.weight_decay)]", TT),
 ('tr_lr_next_step', T, "metrics['learning_rate'] = schedule(state.step)", "metrics['learning_rate'] = schedule(state.step + 1)", TT),
 ('tr_history_keeps_later', T, "                    if row['step'] <= start_step]", "                    ]", TT),
 ('tr_no_last_eval', T, "      if step % config.eval_every_steps == 0 or is_last:\n", "      if step % config.eval_every_steps == 0:\n", TT),
 ('tr_no_ckpt_on_stop', T, "      if step % config.checkpoint_every_steps == 0 or is_last or stop:\n", "      if step % config.checkpoint_every_steps == 0 or is_last:\n", TT),
 ('tr_finished_no_eval', T, "  if step == start_step:  # Resumed a finished run: evaluate the restored state (on every process).\n", "  if False:\n", TT),
 ('tr_grad_norm_params', T, "metrics['monitors/grad_norm'] = optax.tree.norm(grads)", "metrics['monitors/grad_norm'] = optax.tree.norm(state.params)", TT),
]
