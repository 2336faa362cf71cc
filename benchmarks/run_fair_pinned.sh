#!/usr/bin/env bash
# The fair protocol from a git worktree pinned to COMMIT (issue 28): later edits of this checkout never change a
# running experiment, while its records, teacher and log land in this checkout. The worktree is made once under
# $KERAS_INTROSPECT_CACHE/worktrees/. The code that trains, scores and selects is COMMIT's; which runs go in what order
# (phases, lanes) is this checkout's benchmarks/run_fair_protocol.sh. Usage (in the background; finished runs are
# skipped, an interrupted one resumes):
#   KERAS_INTROSPECT_CACHE=/tmp/kicache nohup nice -n 5 bash benchmarks/run_fair_pinned.sh 2accded \
#       /tmp/kicache/cifar10-jpeg 1 2 3 4 >> benchmarks/results/fair_protocol.log 2>&1 &
# or phases 3-4 in two lanes, one per core (see run_fair_protocol.sh), each with its own log:
#   for i in 0 1; do FAIR_LANE=$i/2 KERAS_INTROSPECT_CACHE=/tmp/kicache nohup taskset -c $i nice -n 5 bash \
#       benchmarks/run_fair_pinned.sh 2accded /tmp/kicache/cifar10-jpeg 3 4 >> benchmarks/results/fair_protocol.lane$i.log 2>&1 & done
set -euo pipefail
COMMIT=${1:?the commit whose code runs (the records name it)}
shift
ROOT=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
CACHE=${KERAS_INTROSPECT_CACHE:-$HOME/.cache/keras-introspect}
TREE="$CACHE/worktrees/$(git -C "$ROOT" rev-parse --short "$COMMIT")"
# Lanes start together: one makes the worktree, the others wait for it.
mkdir -p "$CACHE/worktrees"
( flock 9; [ -d "$TREE" ] || git -C "$ROOT" worktree add --detach "$TREE" "$COMMIT" >&2 ) 9> "$CACHE/worktrees/.lock"
export PYTHONPATH="$TREE" KERAS_INTROSPECT_CACHE="$CACHE" TF_CPP_MIN_LOG_LEVEL=2
export FAIR_OUT="$ROOT/benchmarks/results/fair_protocol.jsonl"
export FAIR_TEACHER="$ROOT/benchmarks/teachers/cifar10_fair_resnet20_30ep/model.keras"
cd "$TREE"
exec bash "$ROOT/benchmarks/run_fair_protocol.sh" "$@"
