"""The ALC switches inside the training objective: each trains, logs its monitors, and routes the
gradient where configs/default.py says (the pure losses are checked in test_losses.py)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from alc_jax import methods, train
from configs import common
from tests.conftest import tiny_config

# Each variant on top of the paper's head training and outputs (the shipped defaults are the
# decoupled graph on probabilities, configs/default.py), so each entry is what its name says.
ATTENTION_GRAPH = {'alc.head_training': 'eq13', 'alc.outputs': 'logits'}
VARIANTS = {
    'paper': common.PAPER_ALC,  # Explicit: the shipped defaults are not the paper's reading.
    'scaled_dot_pairs': {'alc.attention_logits': 'scaled_dot', 'alc.pairwise_scale': 'pairs'},
    'cosine_learned': {'alc.attention_logits': 'cosine', 'alc.learned_temperature': True,
                       'alc.pairwise_scale': 'pairs_classes'},
    'entropy': {'alc.entropy_weight': 0.5, 'alc.outputs': 'probs'},
    'decoupled_probs': {'alc.head_training': 'decoupled', 'alc.outputs': 'probs',
                        'alc.attention_logits': 'cosine',
                        'alc.graph_threshold': 0.3},
    'decoupled_pi': {'alc.head_training': 'decoupled', 'method': 'pi_model'},
}


@pytest.mark.parametrize('name', list(VARIANTS))
def test_alc_variant_trains_and_logs_its_monitors(tiny_npz, name):
  exp = train.create_experiment(tiny_config(tiny_npz, **{'alc.enabled': True, **ATTENTION_GRAPH,
                                                         **VARIANTS[name]}))
  state = exp.initial_state
  for _, batch in zip(range(3), exp.train_batches()):
    state, metrics = exp.train_step(state, batch)
  metrics = jax.tree.map(np.asarray, metrics)
  for key in ('losses/alc', 'monitors/attention_logit_spread', 'monitors/similarity_same_class',
              'monitors/same_class_chance', 'monitors/similarity_same_class_labeled'):
    assert key in metrics and np.all(np.isfinite(metrics[key])), key
  assert ('losses/alc_graph' in metrics) == name.startswith('decoupled')
  assert 0 < metrics['monitors/same_class_chance'] < 1


def _grads(exp, batch):
  """Gradient of one run's loss at the initial state, with the step's metrics."""
  state = jax.tree.map(lambda a: a[0], exp.initial_state)
  batch = {k: v[0] for k, v in batch.items() if k != 'diagnostic_label'}
  loss = functools.partial(methods.loss_fn, method=exp.method, model=exp.model,
                           config=exp.config, normalization=exp.data.normalization,
                           rampup_steps=0.0)
  grads, aux = jax.jit(jax.grad(loss, has_aux=True))(state.params, state, batch,
                                                     jax.random.key(0))
  return grads, aux['metrics']


def test_decoupled_graph_trains_the_head_by_its_own_loss_only(tiny_npz):
  # SE bottleneck of 4 units (8 channels / 2): the default ratio leaves one, whose ReLU may be off
  # for the whole batch at initialisation, and then no loss reaches the SE weights.
  base = {'alc.enabled': True, 'alc.head_training': 'decoupled', 'alc.outputs': 'probs',
          'alc.graph_threshold': 0.0, 'alc.se_reduction': 2}
  exp = train.create_experiment(tiny_config(tiny_npz, **base, **{'alc.graph_weight': 0.0}))
  batch = next(exp.train_batches())
  grads, _ = _grads(exp, batch)
  head = [np.abs(np.asarray(g)).sum() for g in jax.tree.leaves(grads['head'])]
  assert all(h == 0 for h in head)  # Eq. 13 with a detached S does not reach the head.
  exp_graph = train.create_experiment(tiny_config(tiny_npz, **base))
  grads_graph, _ = _grads(exp_graph, batch)
  assert all(np.abs(np.asarray(g)).sum() > 0 for g in jax.tree.leaves(grads_graph['head']))
  # ... and the head's loss does not reach the backbone (its input features are detached).
  for a, b in zip(jax.tree.leaves(grads['backbone']), jax.tree.leaves(grads_graph['backbone'])):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_supervised_batch_normalization_scales_the_term(tiny_npz):
  """'batch' = the labeled-mean times labeled / batch (4 of 16 in the tiny config)."""
  values = {}
  for norm in ('labeled', 'batch'):
    exp = train.create_experiment(tiny_config(tiny_npz, supervised_normalization=norm))
    _, metrics = _grads(exp, next(exp.train_batches()))
    values[norm] = float(metrics['losses/supervised'])
  np.testing.assert_allclose(values['batch'], values['labeled'] * 4 / 16, rtol=1e-5)


def test_method_wrappers_forward_every_hook():
  """ALC (alc.WithALC) and SNTG wrap another method: each overrides every hook of
  base.Method, so that a hook added later is not silently the default under a wrapper."""
  from alc_jax.methods import alc, base, sntg  # pylint: disable=g-import-not-at-top
  hooks = {n for n, v in vars(base.Method).items() if callable(v) and not n.startswith('_')}
  assert {'targets', 'loss', 'student_view', 'ema_decay', 'has_teacher'} <= hooks
  for wrapper in (alc.WithALC, sntg.SNTG):
    assert hooks <= set(vars(wrapper)), (wrapper.__name__, sorted(hooks - set(vars(wrapper))))
  wrapped = alc.WithALC(methods.get('fixmatch'))
  for attribute in ('name', 'uses_teacher', 'labeled_only', 'ema_model', 'has_targets'):
    assert getattr(wrapped, attribute) == getattr(methods.get('fixmatch'), attribute)


def test_each_method_declares_the_views_it_draws():
  """Method.view_keys: the augmented views loss_fn draws together (augment.augment_views) for
  the method's passes; a pass that asks Step.view for another one fails, naming view_keys."""
  from alc_jax.methods import alc, base  # pylint: disable=g-import-not-at-top
  from configs import default  # pylint: disable=g-import-not-at-top
  config = default.get_config()
  two, one = ('augment', 'augment2'), ('augment',)
  want = {'supervised': one, 'pseudo_label': one, 'pi_model': two, 'mean_teacher': two,
          'sntg': two, 'vat': one, 'vat_entmin': one, 'fixmatch': ()}
  assert {name: methods.get(name).view_keys(config) for name in methods.NAMES} == want
  for name in methods.NAMES:
    assert alc.WithALC(methods.get(name)).view_keys(config) == want[name]
  config.sntg.base = 'pi_model'
  assert methods.get('sntg').view_keys(config) == two
  step = base.Step(params=None, state=None, images=None, normalization=None, x=None,
                   labels=None, labeled=None, keys={}, model=None, config=config, ramp=None,
                   views={'augment': 'the first view'})
  assert step.view('augment') == 'the first view'
  with pytest.raises(KeyError, match=r"'augment2' was not drawn: add it to the method's "
                     r"view_keys \(drawn: \['augment'\]\)"):
    step.view('augment2')


def test_diagnostic_labels_never_reach_the_loss(tiny_npz):
  paper = {'alc.enabled': True, **common.PAPER_ALC}
  exp = train.create_experiment(tiny_config(tiny_npz, **paper))
  batch = next(exp.train_batches())
  shuffled = dict(batch, diagnostic_label=jnp.roll(batch['diagnostic_label'], 3, axis=1))
  (g1, m1), (g2, m2) = _grads(exp, batch), _grads(exp, shuffled)
  for a, b in zip(jax.tree.leaves(g1), jax.tree.leaves(g2)):
    np.testing.assert_array_equal(a, b)
  assert float(m1['losses/total']) == float(m2['losses/total'])


# A value other than the variants' below for each field of config.alc.
_OTHER_VALUE = {'pooling': 'gmp_avg', 'se_reduction': 2, 'mlp_dim': 4, 'gaussian_temperature': 0.5,
                'gmp_lambda': 5.0, 'temperature': 0.5, 'temperature_floor': 0.05,
                'graph_threshold': 0.1, 'graph_weight': 3.0, 'entropy_weight': 0.5}


@pytest.mark.parametrize('variant', [
    {},  # The shipped reading: the attention head, cosine logits, the decoupled graph.
    common.PAPER_ALC,  # Eq. 13 trains the head; dot-product logits.
    {'alc.similarity': 'gaussian'},  # No head.
    {'alc.channel_attention': False, 'alc.pooling': 'max', 'alc.learned_temperature': True,
     **ATTENTION_GRAPH},
], ids=['decoupled', 'paper', 'gaussian', 'no_se_learned_tau'])
def test_alc_settings_it_does_not_declare_change_no_gradient(tiny_npz, variant):
  """config.alc's fields outside alc.settings (which alc_jax.main refuses to override, as the
  run would ignore them) all changed at once leave the gradient and the logged metrics of the
  step as they were: none of them is read by this reading of ALC."""
  config = tiny_config(tiny_npz, **{'alc.enabled': True, **variant})
  declared = set(methods.fields_read(methods.create(config), config))
  unread = [f for f in methods.all_settings(config)
            if f.startswith('alc.') and f not in declared]
  assert unread
  changed = {}
  for field in unread:
    key, value = field[len('alc.'):], config.alc[field[len('alc.'):]]
    changed[field] = (not value if isinstance(value, bool) else
                      _OTHER_VALUE[key] if _OTHER_VALUE.get(key, value) != value else
                      {'gmp_avg': 'max', 'cosine': 'dot'}.get(value, 'cosine'))
  if config.alc.head_training == 'decoupled':
    del changed['alc.entropy_weight']  # validate() refuses it there by value.
  exp = train.create_experiment(config)
  batch = next(exp.train_batches())
  grads, metrics = _grads(exp, batch)
  other = train.create_experiment(tiny_config(tiny_npz, **{'alc.enabled': True, **variant,
                                                           **changed}))
  other_grads, other_metrics = _grads(other, batch)
  assert jax.tree.structure(grads) == jax.tree.structure(other_grads), changed
  for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(other_grads)):
    np.testing.assert_array_equal(a, b, err_msg=str(changed))
  # Nor a logged value (a graph loss without a head to train moved losses/total only).
  assert sorted(metrics) == sorted(other_metrics)
  for key in metrics:
    np.testing.assert_array_equal(metrics[key], other_metrics[key], err_msg=key)
  assert ('losses/alc_graph' in metrics) == (config.alc.head_training == 'decoupled'
                                             and config.alc.similarity == 'attention')
