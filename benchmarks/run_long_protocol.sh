#!/usr/bin/env bash
# The `long` protocol (docs/comparators.md): Imagenette at 128 px, ResNet-18 (half width), 30 epochs.
# Resumable: finished (config, seed) runs are skipped, an interrupted run continues from its last
# complete epoch. Usage:
#   bash benchmarks/run_long_protocol.sh /path/to/imagenette-128px
set -euo pipefail
DATA=${1:?path of the Imagenette ImageFolder (imagenette-128px)}
OUT=benchmarks/results/long_protocol.jsonl
COMMON=(--protocol long --data "$DATA" --out "$OUT")
# 1. The pilot: does a regularizer beat standard training here at all? (seed 0)
python benchmarks/formulation_sweep.py "${COMMON[@]}" --seeds 0 --configs standard label_smoothing
