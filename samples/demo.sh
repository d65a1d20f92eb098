#!/usr/bin/env bash
# A tour of faild and failc on loopback: two hosts of the worked example,
# lukretia (127.0.0.2) and macbeth (127.0.0.3), each with its own faild.
# Everything runs in a temporary directory and is stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p faild -p failc
bin=$PWD/target/release
work=$(mktemp -d -t failover-demo.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@" || printf '(exit status %s)\n' "$?"; }

start_faild() { # name address
    mkdir -p "$work/$1"
    "$bin/faild" -c samples/communities -a "$2" -s "$work/$1/faild.state" -r "$work/$1/faild.pid"
    pids+=("$(cat "$work/$1/faild.pid")")
}

say "start faild on lukretia (127.0.0.2) and macbeth (127.0.0.3), as the boot script does"
start_faild lukretia 127.0.0.2
start_faild macbeth 127.0.0.3
echo "faild returns once it serves: no pause needed before the first failc"

say "boot: each host registers the service FAIL with its backup host, then RECOVER"
run "$bin/failc" -h 127.0.0.2 -c genesis -s FAIL -b macbeth vip
run "$bin/failc" -h 127.0.0.3 -c genesis -s FAIL -b lukretia vip
run "$bin/failc" -h 127.0.0.2 -c genesis -sRECOVER vip
run "$bin/failc" -h 127.0.0.3 -c genesis -sRECOVER vip

say "lukretia's failsh starts the service and records UP (done by hand here)"
run "$bin/failc" -h 127.0.0.2 -c genesis -s UP vip

say "what macbeth's failsh sees when it polls lukretia, over TCP and UDP"
run "$bin/failc" -h 127.0.0.2 -c public vip
run "$bin/failc" -h 127.0.0.2 -c public -U --json vip

say "a peer's read-only community cannot write; an unknown one cannot even read"
run "$bin/failc" -h 127.0.0.2 -c public -s FAIL vip
run "$bin/failc" -h 127.0.0.2 -c guess vip

say "kill -9 lukretia's faild and start it again: the acknowledged UP survives"
kill -9 "${pids[0]}"
start_faild lukretia 127.0.0.2
run "$bin/failc" -h 127.0.0.2 vip

say "an admin takes lukretia out of service; macbeth's failsh would now take over"
run "$bin/failc" -h 127.0.0.2 -c genesis -s FAIL vip
run "$bin/failc" -h 127.0.0.3 -c genesis -s UP vip
for h in 127.0.0.2 127.0.0.3; do run "$bin/failc" -h "$h" -l; done

say "lukretia's state file"
cat "$work/lukretia/faild.state"
