"""Table 5, column "SVHN": WRN-28-2 on SVHN with 1000 labels (100 per class).

Paper (Sec. 5.6): "the experiment settings of WRN-28-2 version are the same with aforementioned
settings of CNN-13": batch 100 of which 3 labeled, w1 = 5, w2 = 1 (Sec. 5.4), 400 epochs, lr 0.1
cosine, EMA 0.97.
The paper's baseline rows (Supervised, Pseudo-Label, VAT, VAT + EntMin, Mean Teacher, Pi model) are
copied from Oliver et al. 2018 ([47]), who trained with Adam for 500k steps under their own
protocol; here every row runs under the recipe above so that the rows are comparable.
Silent in the paper (our choices): no flips, VAT eps = 2.5 (Miyato et al.'s SVHN value), its power
iteration by the exact Hessian-vector product (config.vat.power_iteration; xi = 1e-6 only with
'finite_difference'); 2-pixel translation and input noise 0.15; no dropout in the WRN; weight
decay 2e-4.
"""

from configs import common

ROWS = ('supervised', 'pseudo_label', 'vat', 'vat_entmin', 'mean_teacher', 'mean_teacher_alc',
        'pi_model', 'pi_model_alc')


def get_config(row='mean_teacher_alc'):
  config = common.experiment('svhn', 1000, row)
  config.model.name = 'wrn28_2'
  return config
