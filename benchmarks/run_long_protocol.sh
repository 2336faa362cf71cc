#!/usr/bin/env bash
# The `long` protocol (docs/comparators.md): Imagenette at 128 px, ResNet-18 (half width), 30 epochs.
# Resumable: finished (config, seed) runs are skipped, an interrupted run continues from its last
# complete epoch (state under $KERAS_INTROSPECT_CACHE/backups). Usage:
#   bash benchmarks/run_long_protocol.sh /path/to/imagenette-128px [PHASE...]
# Phases run in priority order; give phase numbers to run only those.
set -euo pipefail
DATA=${1:?path of the Imagenette ImageFolder (imagenette-128px)}
shift
PHASES=${*:-1 2 3 4 5 6}
OUT=benchmarks/results/long_protocol.jsonl
TEACHER=benchmarks/teachers/imagenette_resnet18w32_60ep/model.keras
COMMON=(--protocol long --data "$DATA" --out "$OUT" --save-models "${KERAS_INTROSPECT_CACHE:-$HOME/.cache/keras-introspect}/models")
sweep() { python benchmarks/formulation_sweep.py "${COMMON[@]}" "$@"; }
for phase in $PHASES; do
  case $phase in
    # 1. The pilot: does a regularizer beat standard training here at all? (seed 0)
    1) sweep --seeds 0 --configs standard label_smoothing ;;
    # 2. The regime's qualification: the same on seeds 1 and 2.
    2) sweep --seeds 1 2 --configs standard label_smoothing ;;
    # 3. The verdict's seeds: IL and PS-KD (the self-distillation rival) on seeds 1 and 2.
    3) sweep --seeds 1 2 --configs il_cam_mass_warmup pskd ;;
    # 4. The other teacher-free rivals, IL's variants and the mechanism ablation, seed 0.
    4) sweep --seeds 0 --configs ols il_ls_mass il_target_ema il_class_targets il_mass_linear confidence_penalty \
         il_uniform_structure label_smoothing_matched ;;
    # 5. Teacher KD and its dissections (the teacher trains twice as long), seed 0.
    5) sweep --seeds 0 --teacher "$TEACHER" --train-teacher --configs kd kd_shuffled kd_uniform ;;
    # 6. Seeds 1 and 2 of the mechanism comparison.
    6) sweep --seeds 1 2 --teacher "$TEACHER" --configs ols il_uniform_structure label_smoothing_matched \
         kd kd_shuffled kd_uniform ;;
    *) echo "unknown phase $phase" >&2; exit 2 ;;
  esac
done
