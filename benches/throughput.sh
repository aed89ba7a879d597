#!/bin/sh
# End-to-end throughput benchmark: builds release `evolve`, `evolve-standin`
# and the orchestrator, then runs `evolve resume` on pre-filled stores against
# the stand-in model. Extra arguments go to the orchestrator (e.g. --quick,
# --sizes 1000,100000, --json path). Prints a table; writes target/throughput.json.
set -eu
cd "$(dirname "$0")/.."
cargo build --release -q -p evolve-cli -p evolve-standin -p evolve-benches --bin evolve --bin evolve-standin --bin throughput
exec target/release/throughput --evolve target/release/evolve --standin target/release/evolve-standin "$@"
