"""Shared defaults for every experiment. Each other config file is a small override of this one.

Values follow Section 5 of Chen, Yang & Ling (Neurocomputing 2020) where the paper states them;
where the paper is silent, the comment says what we chose and why (usually: what the Mean Teacher
reference code of Tarvainen & Valpola does, since the paper says it builds on that code).
"""

import ml_collections


def get_config(row=None):
  """The defaults; `--config=configs/default.py:ROW` applies a method row of configs/common.py
  (e.g. `fixmatch_alc`), as every other config file does."""
  config = ml_collections.ConfigDict()

  # --- What to train -------------------------------------------------------------------------
  # A name of the method registry (alc_jax/methods/): supervised, pseudo_label, pi_model,
  # mean_teacher, sntg, vat, vat_entmin, fixmatch.
  config.method = 'mean_teacher'
  config.seed = 0  # Seeds initialisation, dropout/augmentation noise and (unless split_seed) the label split.
  # Independent runs trained side by side in one compiled program (vmap over runs); run r uses
  # seed + r for everything, including its own label split. A 5-seed table then costs one run.
  config.num_runs = 1
  # How a step maps over the runs: 'vmap', 'loop' (a Python loop inside the one jitted step), or
  # 'auto': loop on the CPU (vmap makes grouped convolutions, slow there), vmap on GPU/TPU.
  config.run_batching = 'auto'

  # --- Attention-based label consistency (Sec. 3.3-3.5) ----------------------------------------
  config.alc = ml_collections.ConfigDict()
  config.alc.enabled = False  # Adds w2 * l_alc (Eq. 6 / 13) to the method's objective.
  config.alc.weight = 1.0  # w2 of Eq. 6; 1 in the paper, 100 on CIFAR-10 (Sec. 5.1, 5.3).
  # Sample weighting for imbalanced labels: 'none' (Eq. 6), 'hard' (Eq. 14) or 'soft' (Eq. 15;
  # for methods with a target prediction: Method.has_targets). With ALC only (alc.enabled).
  config.alc.imbalance = 'none'
  # Similarity S: 'attention' (Eq. 7-12, the paper's ALC), or the attention-free rows of Table 9:
  # 'sample' (Eq. 16), 'gaussian' (Eq. 17), 'cosine' (Eq. 18), which have no attention head: its
  # settings (pooling, channel attention, MLP, attention logits and temperature) are unused there.
  config.alc.similarity = 'attention'
  # Pooling pair of the sample attention (Table 8 a/b/d, Table 9): 'max_avg' (Eq. 10-12),
  # 'max' (GMaxPool only), 'avg' (GAvgPool only), 'mean_of_max_and_avg' (Table 9's "average": the
  # mean of the max-only and avg-only similarities), 'gmp_avg' (generalized max pooling of Murray &
  # Perronnin 2014 with GAvgPool).
  config.alc.pooling = 'max_avg'
  config.alc.channel_attention = True  # SE channel attention, Eq. 7-9 (Table 8 row c turns it off).
  config.alc.se_reduction = 16  # SE bottleneck ratio (Hu et al. 2018's default; the paper is silent).
  # Width of the shared MLP of Eq. 10-11 (hidden and output); 0 = the feature's channel count.
  config.alc.mlp_dim = 0
  config.alc.gaussian_temperature = 0.06  # t of Eq. 17, the value the paper found on validation data.
  config.alc.gmp_lambda = 1.0  # Ridge regulariser of generalized max pooling.
  # Three points the paper leaves open (defaults: the paper's reading):
  # (a) False: gradient flows into S, so the attention head is trained by Eq. 13 (the only loss
  #     that reaches it). True detaches S: the head then stays at its initialisation. Read with
  #     alc.head_training='eq13' only (the decoupled head always detaches S; refused there).
  config.alc.stop_gradient_similarity = False
  # (b) True: the softmax of Eq. 12 runs over all i including i = j (the paper's sum). False masks
  #     the diagonal, which removes the trivial minimiser of Eq. 13 (all mass on i = j).
  config.alc.include_self = True
  # (c) 'logits': p is the pre-softmax output (the paper: "before the Softmax layer");
  #     'probs': the softmax probabilities (the shipped `@decoupled` reading, below).
  config.alc.outputs = 'probs'
  # The shipped defaults of alc.outputs, alc.pairwise_scale, alc.attention_logits and
  # alc.head_training are the `@decoupled` variant of configs/common.py (ALC_VARIANTS; `@paper`
  # restores the literal reading: 'logits', 'batch', 'dot', 'eq13'). Why, measured on Fashion-MNIST (docs/results.md, "ALC
  # on this CPU"): the literal reading collapses S (the attention-logit spread reaches ~1000, row
  # entropy 0.2), cannot fit the labels (supervised loss 2.0) and halves accuracy (32 % vs 73 % for
  # Mean Teacher), and diverges at full width on a GPU. Cosine logits are bounded by
  # 1 / alc.temperature, so S never becomes one-hot and the configs cannot hit the NaN guard
  # through the attention (launch/alc_stability_probe.py). Of the bounded readings, the decoupled
  # graph won every selection on the validation split (+0.49 and +1.29 points over `@cosine` at
  # 2.2 and 8.7 epochs) and was +0.29 over it on the test set at 8 epochs (5 label splits);
  # against Mean Teacher alone its gain there (+0.06) is inside the spread (docs/results.md, 7).
  # Scale of Eq. 13 (the paper leaves it open): the sum over the B x B pairs divided by 'batch'
  # (B), 'pairs' (B^2, a mean over pairs: the scale the paper's w2 values fit) or 'pairs_classes'
  # (B^2 K, a mean over the B x B x K tensor of squared differences, e.g. torch's .mean() of it).
  config.alc.pairwise_scale = 'pairs'
  # Logits of Eq. 12's softmax: 'dot' (x_avg . x_max, the paper's), 'scaled_dot' (/ sqrt(D)),
  # 'cosine' (cosine similarity / alc.temperature: bounded, S cannot become one-hot).
  config.alc.attention_logits = 'cosine'
  config.alc.temperature = 0.1  # tau of the cosine logits (SimCLR/CoMatch use 0.1-0.2).
  config.alc.learned_temperature = False  # Learn tau (as floor + softplus), starting at temperature.
  config.alc.temperature_floor = 0.02  # Lowest learned tau: caps how peaked S can get.
  # beta of a row-entropy penalty beta * sum_ji s_ji log s_ji added to Eq. 13: each row of S then
  # has the finite minimiser softmax(-||p_i - p_j||^2 / beta) instead of a one-hot row. 0 = paper.
  config.alc.entropy_weight = 0.0
  # How the attention head is trained: 'eq13' (the paper: Eq. 13 is its only loss) or
  # 'decoupled': Eq. 13 uses a detached S and detached neighbour targets (the teacher's output, or
  # the one-hot label of a labeled neighbour with alc.outputs=probs), and the head (on detached
  # features) learns S by cross-entropy towards a same-class graph from the labels and the
  # teacher's confident predictions (as CoMatch / SNTG build theirs).
  config.alc.head_training = 'decoupled'
  config.alc.graph_threshold = 0.8  # Teacher confidence for a sample to join the class graph.
  config.alc.graph_weight = 1.0  # Weight of the head's graph loss (it trains only the head).
  # 'global': S over the whole global batch, as on one device; 'per_device': block-diagonal S,
  # one block per device (cheaper at very large batch, and what a per-GPU implementation computes).
  config.alc.scope = 'global'

  # --- Consistency (w1 of Eq. 6) and the EMA teacher (Eq. 2) -----------------------------------
  config.consistency_weight = 5.0  # w1: 5 Fashion-MNIST, 100 CIFAR-10, 5 SVHN (Sec. 5).
  # Scale of the supervised cross-entropy: 'labeled' (mean over the labeled examples of the batch)
  # or 'batch' (summed over them and divided by the whole batch: Eq. 6's sums over one batch, and
  # the Mean Teacher reference code, whose w1 values the paper copies). With 10 labeled of 100,
  # 'labeled' weighs the supervised term 10x more against w1 and w2.
  config.supervised_normalization = 'labeled'

  # Sigmoid ramp-up exp(-5 (1 - t/T)^2) of Laine & Aila / Mean Teacher for w1 (and w2), in epochs.
  # The paper is silent; 5 epochs is the Mean Teacher PyTorch reference's CIFAR-10 setting.
  config.consistency_rampup_epochs = 5.0
  config.ema_decay = 0.97  # alpha of Eq. 2 (Sec. 5: 0.97 in all experiments).
  config.pseudo_label_threshold = 0.0  # Lee 2013 uses argmax (0); Oliver et al. 2018 use 0.95.
  # Pseudo-Label's weight: 'recipe' (w1(t) above, as every recorded run) or 'lee2013' (Lee's
  # alpha(t): 0 until epoch 100, linear to 3 at epoch 600; the paper says it used Lee's setting).
  config.pseudo_label_schedule = 'recipe'
  config.sntg = ml_collections.ConfigDict()
  config.sntg.base = 'pi_model'  # SNTG's public code runs on the Pi-model.
  config.sntg.weight = 0.4  # lambda of Luo et al. 2018, relative to w1.
  config.sntg.margin = 1.0  # Contrastive margin for pairs of different teacher-predicted classes.
  # Squared distance of two embeddings: 'mean' over their dimensions (the public code, which the
  # paper ran) or 'sum' (Luo et al.'s written ||h_i - h_j||^2: D times larger, D = channels).
  config.sntg.distance = 'mean'
  config.vat = ml_collections.ConfigDict()
  config.vat.epsilon = 6.0  # Perturbation radius (Miyato et al.: 6.0 CIFAR-10, 2.5 SVHN).
  config.vat.xi = 1e-6  # Finite-difference step of the power iteration ('finite_difference').
  # How the power iteration gets H d: 'exact' (the Hessian-vector product, jax.jvp of jax.grad) or
  # 'finite_difference' (Miyato et al., with xi). At xi = 1e-6 float32 cannot resolve x + xi d for
  # most pixels: the finite-difference direction's cosine to the exact one is 0.08-0.14
  # (bench/vat_direction.py, docs/results.md), rounding noise; Table 2's VAT rows ran with it.
  config.vat.power_iteration = 'exact'
  config.vat.weight = 1.0  # Weight of the LDS term (ramped up like w1).
  config.vat.entmin_weight = 1.0  # Entropy minimisation weight for 'vat_entmin'.
  # FixMatch (Sohn et al. 2020), alc_jax/methods/fixmatch.py; values of its paper and code.
  config.fixmatch = ml_collections.ConfigDict()
  config.fixmatch.threshold = 0.95  # tau: pseudo-labels only where the weak view is this sure.
  config.fixmatch.weight = 1.0  # lambda_u of the unlabeled term (constant: no ramp-up).
  # The EMA model evaluation reports (FixMatch's 0.999); 0 keeps none and reports the student.
  config.fixmatch.ema_decay = 0.999
  config.fixmatch.num_ops = 2  # RandAugment ops per strong view (FixMatch's N = 2).

  # --- Data ---------------------------------------------------------------------------------
  config.dataset = ml_collections.ConfigDict()
  # fashion_mnist, cifar10, svhn_cropped, imagenet_1pct, npz (config.dataset.path), folder.
  config.dataset.name = 'fashion_mnist'
  # For 'npz' (a .npz file) and 'folder': a folder with labeled/<class>/, unlabeled/ and optional
  # validation/<class>/, test/<class>/ (semi-supervised), or with train/<class>/ and test/<class>/
  # (fully labeled). Layouts and checks: alc_jax/data/labeled_folder.py, npz_files.py. For
  # fashion_mnist: a folder of its IDX files. Refused for the TFDS data sets (they read data_dir).
  config.dataset.path = ''
  config.dataset.data_dir = ''  # TFDS data dir; '' = TFDS' default (~/tensorflow_datasets).
  # Labeled examples in total. -1: every label the data set gives (a labeled/ folder, x_labeled);
  # a fully labeled data set (fashion_mnist, cifar10, svhn_cropped, train/ + test/, x_train) needs
  # a number: the trainer keeps that many of its labels and hides the rest (Fashion-MNIST: 250 =
  # 25 per class x 10 classes). With a given labeled set, a smaller number takes a class-
  # stratified subset of it (learning curves; the split seed draws it) and a larger one is refused.
  config.dataset.num_labels = -1
  # Largest-to-smallest class ratio of the labeled set; 1 = balanced (Sec. 5.7: 5, 10, 15). Only
  # for fully labeled data sets: a given labeled set keeps its own class shares.
  config.dataset.imbalance_ratio = 1.0
  # Held out of the training set (neither labeled nor unlabeled) for hyperparameter choice, as the
  # paper did for w2; evaluated beside the test set as eval/validation_*. With num_runs > 1 set
  # split_seed, so that the runs share one split (refused otherwise). A given labeled set holds it
  # out of its labeled images; a data set with its own validation set (validation/,
  # x_validation) needs 0.
  config.dataset.validation_size = 0
  config.dataset.split_seed = -1  # Label split seed; -1 = the run's seed.
  config.dataset.zca = False  # ZCA whitening (CIFAR-10 option of the Mean Teacher reference).
  # Side of the square images: ImageNet's crops (configs/imagenet_1pct.py: 224), and what a
  # labeled/ + unlabeled/ image folder is resized to (bicubic). 0 = a folder's most common image
  # size in labeled/ (stated on stdout). Arrays (.npz, TFDS, train/ + test/ folders) keep their
  # own size (a size set for them is refused, as are skip_unreadable there and ZCA for ImageNet).
  config.dataset.image_size = 0
  # An image file of a labeled/ folder that cannot be read: False stops with an error naming it;
  # True skips it (a warning gives the count).
  config.dataset.skip_unreadable = False
  # Where a labeled/ folder's decoded images are cached when beside the data (ROOT/.alc_jax_cache)
  # cannot be written; '' = $XDG_CACHE_HOME/alc_jax (~/.cache/alc_jax). Changes no result.
  config.dataset.cache_dir = ''
  # Evaluate on the first N test examples (ImageNet: ceil(N / hosts) of each host's shard);
  # -1 = all of them.
  config.dataset.eval_examples = -1
  config.eval_top5 = False  # Also report top-5 accuracy (Table 4, ImageNet's 1000 classes).

  # --- Batches and augmentation (Sec. 5; the Temporal Ensembling / Mean Teacher recipe) -------------
  config.batch_size = 100  # Global batch (all devices, all hosts).
  config.labeled_batch_size = 10  # Labeled examples in every global batch: 10 / 30 / 3 (Sec. 5.2-5.4).
  # (0 for a method that trains on labels only, supervised: every row is labeled.)
  config.augment = ml_collections.ConfigDict()
  config.augment.translate = 2  # Random translation by up to this many pixels, reflect padding.
  # Horizontal flip of each view (CIFAR-10, ImageNet; ImageNet's input pipeline also flips).
  config.augment.flip = False
  config.augment.noise_std = 0.15  # Gaussian input noise (the reference CNN-13's noise layer).

  # --- Model --------------------------------------------------------------------------------
  config.model = ml_collections.ConfigDict()
  config.model.name = 'cnn13'  # cnn13, wrn28_2, resnet18, tiny_cnn (quick checks, the tests).
  # Channel multiplier for CPU-sized runs (1.0 = the published network, Table 1).
  config.model.width = 1.0
  # Dropout after each pooling of CNN-13 (reference) and TinyCNN; WRN and ResNet-18 have none
  # (another value is refused for them).
  config.model.dropout = 0.5
  # BatchNorm running-average momentum (every backbone; the ImageNet recipe gives ResNet-18
  # torchvision's 0.9). The Mean Teacher TF reference uses 0.999
  # (tuned for 100k+ steps), its PyTorch version 0.9 (torch's 0.1). With 0.999 the running
  # statistics of a run of a few hundred steps are still mostly their initial values and eval
  # accuracy is near chance; 0.99 settles within a few hundred steps.
  config.model.bn_momentum = 0.99
  config.compute_dtype = 'float32'  # 'bfloat16' computes convolutions in bf16 on GPU/TPU.

  # --- Optimisation (Sec. 5) ------------------------------------------------------------------
  config.num_epochs = 400.0  # One epoch = len(training set) / batch_size steps.
  config.num_train_steps = -1  # > 0 overrides num_epochs.
  config.learning_rate = 0.1  # Initial lr of the cosine annealing (Sec. 5).
  config.lr_warmup_epochs = 0.0  # Linear warm-up (the paper: none); rounded to >= 1 step if > 0.
  config.momentum = 0.9
  config.nesterov = True
  config.weight_decay = 2e-4  # Mean Teacher reference value (the paper is silent).

  # --- Bookkeeping ------------------------------------------------------------------------
  config.log_every_steps = 100
  config.eval_every_steps = 1000  # Also evaluated at the end.
  config.checkpoint_every_steps = 1000
  config.keep_checkpoints = 3
  config.eval_batch_size = 500
  config.progress_every_seconds = 30.0  # Terminal progress line (steps/s, ETA, latest accuracy).
  # TensorBoard event files in the workdir (clu's writer), beside metrics.jsonl. clu's writer
  # imports TensorFlow, ~4 s of a 2-core CPU at start-up; False writes metrics.jsonl only.
  config.tensorboard = True
  # num_train_steps and num_epochs set the length of the cosine learning-rate schedule, so a
  # resumption that changes them is refused (config_lib.check_workdir): the run would continue on
  # another schedule from the resumed step, and the rate would jump there. True accepts that
  # (e.g. to extend a finished run on purpose); its config.json then records the new values.
  config.allow_schedule_change = False
  if row:
    from configs import common  # pylint: disable=g-import-not-at-top  (common imports this file)
    common.apply_row(config, row)
  return config
