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
for seed in 0 1 2; do
  python benchmarks/formulation_sweep.py "${COMMON[@]}" --seeds $seed --teacher "$TEACHER/model.keras" \
    --configs standard il_cam_mass kd dml il_cam_nontarget label_smoothing
done
