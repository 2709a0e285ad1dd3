# (name, file, old, new, test files): config refusals and the evaluation metrics of alc_jax.evaluate.
T = 'tests/test_config_lib.py tests/test_errors.py tests/test_configs.py'
E = 'tests/test_inference.py -k classification_metrics'
C = 'alc_jax/config_lib.py'
M = [
 ('cfg_dropout_ignored', C, "and config.model.dropout != models.DEFAULT_DROPOUT):", "and False):", T),
 ('cfg_entropy_decoupled', C, "if config.alc.entropy_weight and config.alc.head_training != 'eq13':", "if False:", T),
 ('cfg_graph_threshold', C, "if not 0 <= config.alc.graph_threshold <= 1:", "if False:", T),
 ('cfg_lbs_labeled_only', C, "if config.labeled_batch_size not in (0, config.batch_size):", "if False:", T),
 ('cfg_lbs_whole_batch', C, "elif not 0 < config.labeled_batch_size < config.batch_size:", "elif not 0 < config.labeled_batch_size <= config.batch_size:", T),
 ('cfg_negative_weight', C, "    if value < 0:\n", "    if value < -1:\n", T),
 ('cfg_ema_one', C, "if not 0 <= config.ema_decay < 1:", "if not 0 <= config.ema_decay <= 1:", T),
 ('cfg_fixmatch_threshold', C, "if not 0 <= config.fixmatch.threshold <= 1:", "if False:", T),
 ('cfg_balanced_multiple', C, "if num_classes and dc.imbalance_ratio == 1 and dc.num_labels % num_classes:", "if False:", T),
 ('cfg_streamed_runs', C, "if config.dataset.name in imagenet.STREAMED_NAMES and config.num_runs != 1:", "if False:", T),
 ('cfg_renamed_pooling', C, "if config.alc.pooling in attention.RENAMED_POOLINGS:", "if False:", T),
 ('cfg_temperature_zero', C, "config.alc.temperature <= 0 or (", "config.alc.temperature < 0 or (", T),
 ('ev_balanced_all', 'alc_jax/evaluate.py', "float(recall[present].mean())", "float(recall.mean())", E),
 ('ev_macro_f1_present', 'alc_jax/evaluate.py', "f1[present | (predicted > 0)].mean()", "f1[present].mean()", E),
 ('ev_precision_recall', 'alc_jax/evaluate.py', "precision, recall = ratio(correct, predicted), ratio(correct, support)", "precision, recall = ratio(correct, support), ratio(correct, predicted)", E),
]
