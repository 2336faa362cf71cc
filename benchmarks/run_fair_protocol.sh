#!/usr/bin/env bash
# The `fair` protocol (issue 28): CIFAR-10, ResNet-20, 10,000 training images, 15 epochs, with 5,000 training
# images held out as a validation split on which every choice is made; the test split only scores the verdict.
# Resumable: finished (config, seed) runs are skipped, an interrupted run continues from its last complete
# epoch (state under $KERAS_INTROSPECT_CACHE/backups). Usage:
#   bash benchmarks/run_fair_protocol.sh /path/to/cifar10-jpeg [PHASE...]
# Lanes: with FAIR_LANE=i/n, phases 3 and 4 run only every n-th of their (seed, configuration) runs, starting at
# the i-th, in the same seed-major order, so n copies, each pinned to one core, share the work:
#   FAIR_LANE=0/2 taskset -c 0 bash benchmarks/run_fair_protocol.sh DATA 3 4 &
#   FAIR_LANE=1/2 taskset -c 1 bash benchmarks/run_fair_protocol.sh DATA 3 4 &
# (benchmarks/core_lanes.py measures whether n one-core runs beat one run on n cores.) The copies append to the
# same results file; their runs are disjoint.
set -euo pipefail
DATA=${1:?path of the CIFAR-10 ImageFolder (cifar10-jpeg)}
shift
PHASES=${*:-1 2 3 4}
OUT=${FAIR_OUT:-benchmarks/results/fair_protocol.jsonl}
TEACHER=${FAIR_TEACHER:-benchmarks/teachers/cifar10_fair_resnet20_30ep/model.keras}
LANE=${FAIR_LANE:-0/1}
LANE_INDEX=${LANE%/*} LANES=${LANE#*/}
[[ $LANE_INDEX =~ ^[0-9]+$ && $LANES =~ ^[1-9][0-9]*$ && $LANE_INDEX -lt $LANES ]] ||
  { echo "FAIR_LANE must be i/n with 0 <= i < n, not '$LANE'" >&2; exit 2; }
COMMON=(--protocol fair --data "$DATA" --out "$OUT")
sweep() { python benchmarks/formulation_sweep.py "${COMMON[@]}" "$@"; }
IL_FORMS=(il_default il_responses il_responses_kd il_shape_softmax)
VERDICT_SEEDS=(2 3 4 5 6)
# The verdict's runs in seed-major order, as one sweep would run them; this lane runs its share.
RUN=0
lane_sweep() {  # lane_sweep "CONFIG..." [sweep options...]
  local configs=($1) seed config
  shift
  if (( LANES == 1 )); then sweep --seeds "${VERDICT_SEEDS[@]}" --configs "${configs[@]}" "$@"; return; fi
  for seed in "${VERDICT_SEEDS[@]}"; do
    for config in "${configs[@]}"; do
      if (( RUN++ % LANES == LANE_INDEX )); then sweep --seeds "$seed" --configs "$config" "$@"; fi
    done
  done
}
for phase in $PHASES; do
  case $phase in
    # 1. The pilot, on validation: does a teacher's soft label beat standard training here? (seeds 0, 1)
    1) sweep --seeds 0 1 --teacher "$TEACHER" --train-teacher --configs standard kd ;;
    # 2. IL's forms, today's default among them, on seeds 0 and 1 (validation decides).
    2) sweep --seeds 0 1 --configs "${IL_FORMS[@]}" ;;
    # 3. The verdict on five fresh seeds: the form chosen on validation against the rivals.
    3) il=$(python benchmarks/fair_select.py "$OUT" --seeds 0 1 --among "${IL_FORMS[@]}")
       echo "=== phase 3: chosen on validation (seeds 0-1): $il (lane $LANE)"
       lane_sweep "standard label_smoothing pskd $il" ;;
    # 4. The teacher's student on the same five seeds, as the reference of what a soft label can give.
    4) lane_sweep kd --teacher "$TEACHER" ;;
    *) echo "unknown phase $phase" >&2; exit 2 ;;
  esac
done
