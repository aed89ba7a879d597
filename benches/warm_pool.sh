#!/usr/bin/env bash
# Evaluations per second of a trivial Python evaluator whose module import
# costs ~100 ms: a fresh interpreter per candidate (warm_workers = false)
# against warm workers that import once and fork per candidate. Both run the
# full sandbox (re-exec helper, rlimits, pids cgroup, network namespace where
# available) through the real `evolve run`.
#
# Usage: benches/warm_pool.sh [iterations]   (default 60; builds release first)
set -euo pipefail

iterations="${1:-60}"
root="$(cd "$(dirname "$0")/.." && pwd)"
cargo build --release --quiet --manifest-path "$root/Cargo.toml" -p evolve-cli
evolve="$root/target/release/evolve"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
problem="$work/problem"
mkdir -p "$problem"

cat >"$problem/heavy.py" <<'EOF'
# Stands in for a heavy import (numpy, torch, a model): ~100 ms of CPU.
import time
_start = time.perf_counter()
_acc = 0
while time.perf_counter() - _start < 0.1:
    _acc += sum(range(1000))
READY = True
EOF
cat >"$problem/evaluator.py" <<'EOF'
import heavy

def evaluate(path):
    text = open(path).read()
    return {"score": float(sum(ord(c) for c in text) % 1000), "ready": heavy.READY}
EOF
cat >"$problem/initial.py" <<'EOF'
# EVOLVE-BLOCK-START
a = 11
b = 23
c = 37
d = 41
e = 53
# EVOLVE-BLOCK-END
EOF

rate() {
    local warm="$1" out="$work/run-$1"
    cat >"$problem/problem.toml" <<EOF
name = "warm_pool_bench"
initial_program = "initial.py"

[evaluator]
python = "evaluator.py"
objective = "score"
direction = "maximize"
timeout_s = 10
warm_workers = $warm

[evolution]
islands = 1
EOF
    local start end evaluated
    start=$(date +%s.%N)
    evaluated=$("$evolve" run "$problem" --iterations "$iterations" -j 1 --out "$out" --json 2>/dev/null |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["evaluated"])')
    end=$(date +%s.%N)
    python3 -c "print(f'{$evaluated / ($end - $start):.2f} {$evaluated} {$end - $start:.2f}')"
}

read -r spawn_rate spawn_n spawn_s < <(rate false)
read -r warm_rate warm_n warm_s < <(rate true)
echo "spawn per candidate: $spawn_rate evaluations/s ($spawn_n evaluations in $spawn_s s)"
echo "warm workers:        $warm_rate evaluations/s ($warm_n evaluations in $warm_s s)"
python3 -c "print(f'warm / spawn:        {$warm_rate / $spawn_rate:.1f}x')"
