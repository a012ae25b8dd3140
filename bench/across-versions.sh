#!/bin/sh
# Before/after across a wire-protocol change. `compare` speaks one protocol version, so it
# cannot drive a broker of another version in the same process; instead each side runs with
# its own harness, its own broker and a fresh RabbitMQ, and the sides alternate round by round
# (before, after, before, after, ...) so the machine's drift spreads over both. Compare each
# side's ratio to RabbitMQ, and the two sides' medians.
#
#   bench/across-versions.sh BEFORE_DIR AFTER_DIR ROUNDS [compare options...]
#
# Each DIR holds a `compare` and the `switchyard` it drives (built from one commit with
# `cargo build --release --locked -p switchyard --bin switchyard -p switchyard-bench --bin compare`).
# Results: one JSON-lines file per side and round in bench/across/, and a summary of medians
# (python3 bench/across-summary.py bench/across/*.jsonl).
set -eu

cd "$(dirname "$0")/.."
before=$1
after=$2
rounds=$3
shift 3
mkdir -p bench/across
round=1
while [ "$round" -le "$rounds" ]; do
    for side in before after; do
        if [ "$side" = before ]; then dir=$before; else dir=$after; fi
        echo "== round $round: $side ($dir)" >&2
        "$dir/compare" --brokers switchyard,rabbitmq --repetitions 1 \
            --json "bench/across/$side-$round.jsonl" "$@"
    done
    round=$((round + 1))
done
python3 bench/across-summary.py bench/across/*.jsonl
