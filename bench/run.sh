#!/bin/sh
# Switchyard vs RabbitMQ: installs RabbitMQ from Debian's packages if it is missing, builds
# the release broker and the harness, and runs the comparison. Every argument goes to the
# harness (`bench/run.sh --help` lists them), e.g.
#   bench/run.sh --workloads W1,W3 --repetitions 1 --scale 0.1
# Results: the table on stdout; JSON lines in bench/results.jsonl unless --json is given.
set -eu

cd "$(dirname "$0")/.."

if [ ! -x /usr/lib/rabbitmq/bin/rabbitmq-server ]; then
    echo "installing rabbitmq-server from Debian's packages" >&2
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y rabbitmq-server
fi

# perf counts each server's fsync calls in W2 (optional: without it the count is left out).
if ! command -v perf >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive ${SUDO:-} apt-get install -y linux-perf >/dev/null 2>&1 || true
fi

# The image does not auto-start services; if a package install started one anyway, the
# harness still uses its own node on its own ports.
# One command, so the broker and the harness share one feature resolution (one build).
cargo build --release --locked -p switchyard --bin switchyard -p switchyard-bench --bin compare

target="${CARGO_TARGET_DIR:-target}"
case " $* " in
    *" --json "* | *" --json="*) exec "$target/release/compare" "$@" ;;
    *) exec "$target/release/compare" --json bench/results.jsonl "$@" ;;
esac
