#!/usr/bin/env bash
# A failover you can watch, on loopback: the worked example's two hosts,
# lukretia (127.0.0.2, the master) and macbeth (127.0.0.3, the slave), each
# with its own faild and failsh, run a toy service (a real process; see
# samples/toy/toy-service.sh). The demo kills the master with SIGKILL, shows
# the slave taking over, reboots the master and shows the failback.
# Everything runs in a temporary directory and is stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "building (release)..."
cargo build --release -q -p faild -p failsh -p failc -p failmon
bin=$PWD/target/release
toy=$PWD/samples/toy/toy-service.sh
work=$(mktemp -d -t failover-demo.XXXXXX)
interval=1 timeout=3
cleanup() {
    for f in "$work"/*/*.pid "$work"/*.pid; do
        [ -f "$f" ] && kill -9 "$(cat "$f")" 2> /dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT
: > "$work/journal"
# faild refuses a community file others may change: a private copy, whatever the umask
install -m 600 samples/communities "$work/communities"

say() { printf '\n\033[1m%s\033[0m\n' "$*"; }
state() {
    local s
    s=$("$bin/failc" -h "$1" -t 1 toy 2> /dev/null | awk '{print $2}') || true
    echo "${s:-(down)}"
}
show() { printf '  %s   lukretia: %-8s macbeth: %-8s\n' "$(date +%T.%N | cut -c1-12)" "$(state 127.0.0.2)" "$(state 127.0.0.3)"; }
# watch UNTIL-COMMAND: prints both states every half second until it holds (at most 60 s)
watch() {
    local deadline=$((SECONDS + 60))
    show
    until eval "$1"; do
        [ $SECONDS -lt $deadline ] || { echo "  (gave up waiting)"; return 1; }
        sleep 0.5
        show
    done
    show
}

boot() { # NAME ADDRESS PEER PEER-ADDRESS ROLE STOPPED BOOT-ID
    local name=$1 addr=$2 peer=$3 peer_addr=$4 role=$5 stopped=$6 d=$work/$1
    mkdir -p "$d"
    cat > "$d/$name.lua" << LUA
-- $name: the toy service, its peer as its ${role%s}
failhost("localhost", "address", "$addr")
failhost("localhost", "community", "genesis")
failhost("$peer", "address", "$peer_addr")
local toy = "$toy $name $work"
failsvc{
    name = "toy", interval = $interval, timeout = $timeout,
    $role = { "$peer" },
    start = function() exec(toy .. " up"); return "UP" end,
    stop = function() exec(toy .. " down"); return "$stopped" end,
    reclaim = function() exec(toy .. " reclaim"); return "UP" end,
}
LUA
    # the boot scripts: faild, the service registered FAIL then RECOVER, failsh
    FAILD_BOOT_ID=$7 "$bin/faild" -c "$work/communities" -a "$addr" -s "$d/faild.state" -r "$d/faild.pid"
    "$bin/failc" -h "$addr" -c genesis -s FAIL -b "$peer" toy 2> /dev/null > /dev/null
    "$bin/failc" -h "$addr" -c genesis -sRECOVER toy > /dev/null
    "$bin/failsh" -f "$d/$name.lua" -a "$addr" -i "$d/failsh.pid" -l "$d/failsh.dump"
}

say "1. boot lukretia (master, 127.0.0.2) and macbeth (slave, 127.0.0.3): faild, register, failsh"
echo "   interval ${interval} s, a silent peer counts as FAIL after ${timeout} s"
boot lukretia 127.0.0.2 macbeth 127.0.0.3 slaves FAIL boot-1
boot macbeth 127.0.0.3 lukretia 127.0.0.2 masters RECOVER boot-1
watch '[ "$(state 127.0.0.2)" = UP ] && [ "$(state 127.0.0.3)" = RECOVER ]'

say "2. lukretia crashes: its faild, failsh and service are killed with SIGKILL"
for f in faild failsh; do kill -9 "$(cat "$work/lukretia/$f.pid")"; done
kill -9 "$(cat "$work/lukretia.pid")"; rm -f "$work/lukretia.pid"
echo "lukretia down $(date +%s.%N)" >> "$work/journal"
start=$SECONDS
watch '[ "$(state 127.0.0.3)" = UP ]'
echo "   macbeth took over after about $((SECONDS - start)) s"

say "3. lukretia reboots: faild (UP is not kept across a reboot), RECOVER, failsh"
boot lukretia 127.0.0.2 macbeth 127.0.0.3 slaves FAIL boot-2
watch '[ "$(state 127.0.0.2)" = UP ] && [ "$(state 127.0.0.3)" = RECOVER ]'
echo "   macbeth stood down as soon as it saw lukretia RECOVER; then lukretia started"

say "4. what the service hooks wrote (up is written before a start, down after a stop):"
awk '{ printf "   %s  %-8s %s\n", strftime("%T", $3), $1, $2 }' "$work/journal" 2> /dev/null || cat "$work/journal"

say "5. failsh's monitor port on lukretia (127.0.0.2:1848), read by failmon -1:"
"$bin/failmon" -1 127.0.0.2 | sed 's/^/   /' || true
echo "   (failmon 127.0.0.2 is the full-screen view; docs/failmon.md)"
