"""A tiny end-to-end run: trains in well under 2 minutes on a 2-core CPU and writes everything a
real run writes (checkpoints, TensorBoard events, metrics.jsonl, results.json, similarity.npz).

Used by the end-to-end tests (under tfds.testing.mock_data or on real Fashion-MNIST).
"""

from configs import default


def get_config():
  config = default.get_config()
  config.method = 'mean_teacher'
  config.alc.enabled = True
  config.dataset.name = 'fashion_mnist'
  config.dataset.num_labels = 100
  config.batch_size = 32
  config.labeled_batch_size = 8
  config.model.width = 0.125  # 16-32-64 channels instead of 128-256-512 (CPU-sized).
  config.num_train_steps = 30
  config.consistency_rampup_epochs = 0.0
  config.log_every_steps = 10
  config.eval_every_steps = 15
  config.checkpoint_every_steps = 10
  config.eval_batch_size = 1000
  config.progress_every_seconds = 0.0
  return config
