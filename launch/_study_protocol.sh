# Sourced by the study scripts (alc_study.sh, paper_tables_study.sh): one home for their prologue
# and for the CPU protocol's overrides, so every study runs the same protocol.
# Sets PY (the interpreter; $PYTHON overrides), SWEEP (the sweep runner, --dry-run under
# DRY_RUN=1), the final protocol's budget (FINAL_STEPS = 4800 steps = 8 epochs of Fashion-MNIST,
# ramp-up of w1/w2 over FINAL_RAMP epochs, eval and checkpoints every FINAL_EVERY steps), and
# cpu_protocol STEPS RAMP EVERY, which fills the array CPU with the overrides: CNN-13 at 1/16
# width, 3 seeds per job (a loop over the runs in one jitted step on the CPU), the cosine schedule
# over STEPS, logging every 50 steps.
PY="${PYTHON:-.venv/bin/python}"
SWEEP="$PY launch/sweep.py"
if [ -n "${DRY_RUN:-}" ]; then SWEEP="$SWEEP --dry-run"; fi
FINAL_STEPS=4800 FINAL_RAMP=2 FINAL_EVERY=600
cpu_protocol() {
  CPU=(--num-runs-per-job 3 --override config.model.width=0.0625
    --override config.num_train_steps="$1" --override config.consistency_rampup_epochs="$2"
    --override config.eval_every_steps="$3" --override config.checkpoint_every_steps="$3"
    --override config.log_every_steps=50)
}
