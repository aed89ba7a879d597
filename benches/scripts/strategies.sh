#!/bin/sh
# Compares parent selection strategies on problems/function_minimization with
# the offline mutator: 5 seeds per strategy, the same number of iterations,
# median best mean_value per strategy (lower is better).
#
#   cargo build --release -p evolve-cli
#   benches/scripts/strategies.sh [iterations] [jobs]
set -eu
ITERATIONS=${1:-100}
JOBS=${2:-2}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
EVOLVE=${EVOLVE:-$ROOT/target/release/evolve}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

printf '| selection | median best mean_value | seeds 1-5 | median evaluated |\n|---|---|---|---|\n'
for strategy in weighted power-law tournament uniform fitness-proportional hill-climb best-of-n; do
    problem=$WORK/$strategy
    cp -r "$ROOT/problems/function_minimization" "$problem"
    rm -rf "$problem/runs"
    # [evolution] is the last table of this problem.toml.
    printf 'selection = "%s"\n' "$strategy" >> "$problem/problem.toml"
    bests=""
    evaluated=""
    for seed in 1 2 3 4 5; do
        summary=$("$EVOLVE" run "$problem" --iterations "$ITERATIONS" --jobs "$JOBS" \
            --seed "$seed" --out "$WORK/run-$strategy-$seed" --json 2>/dev/null)
        best=$(printf '%s' "$summary" | python3 -c 'import json,sys; print(json.load(sys.stdin)["best_score"])')
        count=$(printf '%s' "$summary" | python3 -c 'import json,sys; print(json.load(sys.stdin)["evaluated"])')
        bests="$bests $best"
        evaluated="$evaluated $count"
    done
    python3 - "$strategy" "$bests" "$evaluated" <<'PY'
import statistics, sys
name, bests, evaluated = sys.argv[1], [float(v) for v in sys.argv[2].split()], [int(v) for v in sys.argv[3].split()]
print(f"| {name} | {statistics.median(bests):.6f} | {' '.join(f'{b:.4f}' for b in bests)} | {statistics.median(evaluated):.0f} |")
PY
done
