#!/usr/bin/env bash
# The formulation sweep behind docs/method.md §5, in the order it is run.
# Resumable: finished (config, seed) pairs are skipped. Usage:
#   bash benchmarks/run_formulation_sweep.sh /path/to/cifar10-jpeg
set -euo pipefail
DATA=${1:?path of the CIFAR-10 ImageFolder}
OUT=benchmarks/results/formulation_sweep.jsonl
TEACHER=benchmarks/teachers/resnet20_10k_30ep
COMMON=(--data "$DATA" --train-size 10000 --epochs 15 --out "$OUT")
# A ResNet-20 teacher trained twice as long on the same 10,000-image subset (seed 0).
if [ ! -f "$TEACHER/model.keras" ]; then
  keras-introspect train --method standard --dataset "$DATA" --train-size 10000 --epochs 30 --lr 0.05 \
    --seed 0 --output "$TEACHER" --verbose 2
fi
# In priority order, so that a sweep cut short still answers the most important question first.
# 1. The comparison the targets are checked on (docs/method.md §5), three seeds.
python benchmarks/formulation_sweep.py "${COMMON[@]}" --seeds 0 1 2 --teacher "$TEACHER/model.keras" \
  --configs standard kd il_cam_mass_warmup label_smoothing confidence_penalty
# 2. One-axis ablations around the warm-up default (seed 0): explainer, explained layer, similarity,
#    target temperature, alpha, target form.
python benchmarks/formulation_sweep.py "${COMMON[@]}" --seeds 0 --configs il_warmup_uncentered \
  il_warmup_alpha0.9 il_warmup_vanilla_top2 il_warmup_gradcam_stage2 il_warmup_tau1 il_warmup_nontarget_weak
# 3. The other comparators of docs/comparators.md, seed 0: the teacher dissection (its soft labels with
#    the non-true probabilities shuffled / made uniform), teacher-free KD, ISL and FRSKD.
python benchmarks/formulation_sweep.py "${COMMON[@]}" --seeds 0 --teacher "$TEACHER/model.keras" \
  --configs kd_shuffled kd_uniform tfkd isl frskd
# 4. IL without warm-up (the first default) and peer learning, three seeds.
python benchmarks/formulation_sweep.py "${COMMON[@]}" --seeds 0 1 2 --configs il_cam_mass dml
# 5. One-axis ablations around the first default (seed 0).
python benchmarks/formulation_sweep.py "${COMMON[@]}" --seeds 0 --configs il_cam_nontarget \
  il_gradcam_stage2_mass il_cam_mass_tau1 il_cam_mass_eps0.05 il_cam_softmax_tau0.05 il_cam_nontarget_weak \
  il_cam_mass_uncentered il_cam_mass_alpha0.2
