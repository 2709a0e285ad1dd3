import sys
sys.path.insert(0, '/tmp/mutrun')
from mutants import M as M1
SURVIVORS = ['ema_keep_stats', 'acc_unlabeled', 'w1_noramp', 'cons_noweight', 'pi_same_view',
             'mt_dropout', 'mt_student_stats', 'alc_w2_noramp', 'alc_soft_as_hard',
             'alc_sup_noweight', 'alc_probs_nolabel', 'vat_no_ramp', 'sntg_now1']
M = [m for m in M1 if m[0] in SURVIVORS] + [
 ('ts_teacher_stats', 'alc_jax/train.py', "teacher = ({} if aux['teacher_batch_stats'] is None", "teacher = ({} if True"),
 ('lf_student_key', 'alc_jax/methods/base.py', "params, state.batch_stats, inputs, step.keys['dropout'], with_similarity", "params, state.batch_stats, inputs, step.keys['dropout2'], with_similarity"),
 ('alc_reference', 'alc_jax/methods/alc.py', "reference = logits if target_logits is None else target_logits", "reference = logits"),
 ('pl_threshold', 'alc_jax/methods/pseudo_label.py', "step.config.pseudo_label_threshold,", "0.0,"),
 ('pl_mask', 'alc_jax/methods/pseudo_label.py', "mask=~step.labeled)", "mask=None)"),
 ('vat_view', 'alc_jax/methods/vat.py', "vat = vat_loss(forward, student.inputs,", "vat = vat_loss(forward, step.x,"),
 ('alc_hard_cons_labels', 'alc_jax/methods/alc.py', "hard = losses.imbalance_weight(jnp.argmax(target_logits, -1), prior)", "hard = losses.imbalance_weight(jnp.clip(step.labels, 0), prior)"),
]
