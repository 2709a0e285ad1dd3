# Rounds 9 and 10's survivors against the new tests (and, for four of the pipeline's, the
# trainer's and the user path's test files).
from mutants9 import M as M9
from mutants10 import M as M10

BROAD = ('tests/test_pipeline.py tests/test_train.py tests/test_train_end_to_end.py '
         'tests/test_errors.py tests/test_user_data.py')
TESTS = {
    'norm_zca_eps': 'tests/test_augment.py', 'norm_zca_no_mu': 'tests/test_augment.py',
    **{n: 'tests/test_model_reference.py' for n in (
        'cnn_slope', 'cnn_bn_eps', 'cnn_init_fan_in', 'cnn_dropout_once', 'wrn_slope',
        'wrn_abr_swapped', 'resnet_bn_eps', 'resnet_no_final_relu')},
    **{n: 'tests/test_datasets.py' for n in (
        'in_crop_padding', 'in_center_offset', 'in_no_flip', 'in_same_stream_seed', 'in_round',
        'tf_download_policy', 'tf_label_range')},
    'in_seed_ignores_step': 'tests/test_pipeline.py', 'pl_split_seed_fixed': 'tests/test_pipeline.py',
    **{n: BROAD for n in ('pl_eval_examples', 'pl_val_from_run1', 'pl_wanted_no_val',
                          'pl_no_prefetch')},
    **{n: '-k export tests/test_inference.py' for n in ('ex_platforms', 'ex_class_names',
                                                        'ex_readme_weights')},
}
M = [(n, f, old, new, TESTS[n]) for n, f, old, new, _ in M9 + M10 if n in TESTS]
assert len(M) == len(TESTS)
