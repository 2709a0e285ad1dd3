"""Table 5, column "CIFAR-10": WRN-28-2 on CIFAR-10 with 4000 labels (400 per class).

Paper (Sec. 5.6): "the experiment settings of WRN-28-2 version are the same with aforementioned
settings of CNN-13": batch 100 of which 30 labeled, w1 = 100, w2 = 100 (Sec. 5.3), 400 epochs, lr
0.1 cosine, EMA 0.97.
The paper's baseline rows (Supervised, Pseudo-Label, VAT, VAT + EntMin, Mean Teacher, Pi model) are
copied from Oliver et al. 2018 ([47]), who trained with Adam for 500k steps under their own
protocol; here every row runs under the recipe above so that the rows are comparable.
Silent in the paper (our choices): flips and ZCA (our choice, as for configs/cifar10_1000.py), VAT
eps = 6.0 (Miyato et al.'s CIFAR-10 value), its power iteration by the exact Hessian-vector product
(config.vat.power_iteration; xi = 1e-6 only with 'finite_difference'); 2-pixel translation and
input noise 0.15; no dropout in the WRN; weight decay 2e-4.
"""

from configs import common

ROWS = ('supervised', 'pseudo_label', 'vat', 'vat_entmin', 'mean_teacher', 'mean_teacher_alc',
        'pi_model', 'pi_model_alc')


def get_config(row='mean_teacher_alc'):
  config = common.experiment('cifar10', 4000, row)
  config.model.name = 'wrn28_2'
  return config
