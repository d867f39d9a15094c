#!/usr/bin/env bash
# Compare weir with raw loopback TCP, a socat relay and the Node
# piping-server, in one interleaved run, on this machine, over 127.0.0.1 only.
#
#   scripts/compare.sh [--size 1G] [--runs 5] [--pipes 64] [--kinds lean,curl,bench]
#                      [--no-piping] [--no-rss] [--no-build]
#
# Paths: raw loopback (one TCP hop, the ceiling for any relay here); socat
# (`socat -b 65536 TCP-LISTEN:A,fork TCP:127.0.0.1:B`: one extra process and
# hop, no HTTP); weir with Content-Length on the splice path (the kernel pipe
# growing within --splice-budget, and with --splice-budget 0 so it stays at
# 64 KiB), through the ring (--no-splice), and chunked; the Node
# piping-server from npm (installed into a scratch directory; skipped with a
# notice if npm cannot fetch it).
#
# Client kinds: lean (scripts/lean.py: an os.sendfile sender and a
# socket.recv_into receiver that checks nothing, so the clients' own work is
# as small as it gets), curl, and weir-bench (which checks every byte). On
# loopback the TCP work of whichever process sends runs inside its system
# call, so a slow client shifts work off the relay: figures from different
# client kinds differ, and only figures that hold for each kind are claims.
#
# For every run: throughput, the relay's CPU seconds per GiB (/proc/PID/stat
# utime+stime, reaped children included) and the whole machine's busy CPU
# seconds per GiB (/proc/stat, softirq included) over the transfer. Cases run
# round-robin (round 1 of every case, then round 2, ...) so that load from
# elsewhere falls on every case alike; medians and [min-max] of --runs
# rounds, and the load average after each round, are printed. Then weir's
# resident set idle and with 1,000 and 10,000 parked senders and receivers.
#
# Only processes this script started are stopped, by PID, on exit. Every
# measurement runs under a timeout.

set -euo pipefail
cd "$(dirname "$0")/.."

SIZE=1G
RUNS=5
PIPES=64
KINDS=lean,curl,bench
DO_PIPING=1
DO_RSS=1
DO_BUILD=1
STEP_TIMEOUT=300

usage() { sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --size) SIZE=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --pipes) PIPES=$2; shift 2 ;;
    --kinds) KINDS=$2; shift 2 ;;
    --no-piping) DO_PIPING=0; shift ;;
    --no-rss) DO_RSS=0; shift ;;
    --no-build) DO_BUILD=0; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "compare.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

TARGET_DIR=${CARGO_TARGET_DIR:-target}
BIN=$TARGET_DIR/release
TMP=$(mktemp -d)
PIDS=()

cleanup() {
  local p
  for p in "${PIDS[@]}"; do
    kill "$p" 2>/dev/null || true
  done
  for p in "${PIDS[@]}"; do
    wait "$p" 2>/dev/null || true
  done
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '== %s\n' "$*" >&2; }

# Forget a PID this script has stopped and waited for.
forget() {
  local keep=() p
  for p in "${PIDS[@]}"; do [ "$p" != "$1" ] && keep+=("$p"); done
  PIDS=("${keep[@]+"${keep[@]}"}")
}

stop_pid() {
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  forget "$1"
}

# A port below the kernel's ephemeral range that no TCP socket uses (the
# window until our bind is short, and a clash fails loudly at bind).
free_port() {
  local lo hi p hex
  read -r lo hi </proc/sys/net/ipv4/ip_local_port_range
  [ "$lo" -gt 11000 ] || lo=30000
  for _ in $(seq 1 200); do
    p=$(( 10000 + RANDOM % (lo - 10000) ))
    hex=$(printf '%04X' "$p")
    if ! grep -q ":$hex " /proc/net/tcp /proc/net/tcp6 2>/dev/null; then
      echo "$p"
      return
    fi
  done
  echo "compare.sh: no free port found" >&2
  exit 1
}

wait_port() {
  for _ in $(seq 1 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "compare.sh: nothing listens on 127.0.0.1:$1" >&2
  exit 1
}

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

median() { sort -g | awk '{v[NR]=$1} END {if (NR==0) print "-"; else if (NR%2) print v[(NR+1)/2]; else printf "%.4g\n", (v[NR/2]+v[NR/2+1])/2}'; }

# Start weir on a fresh port; sets WEIR_PID and WEIR_PORT.
start_weir() {
  WEIR_PORT=$(free_port)
  RUST_LOG=warn "$BIN/weir" --listen "127.0.0.1:$WEIR_PORT" --max-upload-bytes 0 \
    --max-connections 25000 --max-parked-per-ip 0 "$@" >>"$TMP/weir.log" 2>&1 &
  WEIR_PID=$!
  PIDS+=("$WEIR_PID")
  wait_port "$WEIR_PORT"
}

# ---------------------------------------------------------------------------
if [ "$DO_BUILD" = 1 ]; then
  say "building weir and weir-bench (release)"
  cargo build --release -j1 --bin weir --bin weir-bench
fi
[ -x "$BIN/weir" ] && [ -x "$BIN/weir-bench" ] || {
  echo "compare.sh: $BIN/weir or $BIN/weir-bench missing; build first" >&2
  exit 1
}

for tool in socat curl python3; do
  if ! command -v "$tool" >/dev/null; then
    say "installing $tool from Debian"
    apt-get update -qq && apt-get install -y -qq "$tool" >/dev/null
  fi
done

PIPING=()
if [ "$DO_PIPING" = 1 ]; then
  NPM_DIR=${TMPDIR:-/tmp}/weir-compare-piping-server
  if [ ! -x "$NPM_DIR/node_modules/.bin/piping-server" ]; then
    say "installing piping-server from npm into $NPM_DIR"
    mkdir -p "$NPM_DIR"
    if ! command -v npm >/dev/null || ! (cd "$NPM_DIR" &&
      timeout 300 npm install --no-audit --no-fund piping-server >/dev/null 2>&1); then
      say "NOTICE: npm could not install piping-server; it is left out of this run"
    fi
  fi
  if [ -x "$NPM_DIR/node_modules/.bin/piping-server" ]; then
    PIPING=(--piping "$(readlink -f "$NPM_DIR/node_modules/.bin/piping-server")")
    say "piping-server $(node -p "require('$NPM_DIR/node_modules/piping-server/package.json').version")"
  fi
fi

# Parked clients need a file descriptor each, on both sides.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
say "open-file limit $(ulimit -n)"

say "load average $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores"
echo "weir $(git describe --always --dirty 2>/dev/null || echo '?'), $(socat -V 2>/dev/null | awk '/socat version/ {print "socat", $3; exit}'), curl $(curl -V | awk 'NR==1 {print $2}'), node $(node -v 2>/dev/null || echo none)"
timeout $((STEP_TIMEOUT * RUNS * 20)) python3 scripts/compare.py --bin "$BIN" --size "$SIZE" \
  --runs "$RUNS" --pipes "$PIPES" --kinds "$KINDS" --timeout "$STEP_TIMEOUT" "${PIPING[@]+"${PIPING[@]}"}"

# ---------------------------------------------------------------------------
# Resident set: a fresh weir per figure; idle first, then N parked clients.
RSS_ROWS=()
park_rss() {
  local side=$1 n=$2 idle full park_pid out err
  # Files of its own per run: a stale `ready` must never be read.
  out=$TMP/park-$side-$n.out
  err=$TMP/park-$side-$n.err
  : >"$out"
  start_weir
  sleep 0.2
  idle=$(rss_kib "$WEIR_PID")
  timeout 200 "$BIN/weir-bench" --url "http://127.0.0.1:$WEIR_PORT/" --park "$n" \
    --park-side "$side" --hold 150 --timeout 120 >"$out" 2>"$err" &
  park_pid=$!
  PIDS+=("$park_pid")
  for _ in $(seq 1 1200); do
    grep -q '^ready' "$out" && break
    kill -0 "$park_pid" 2>/dev/null || break
    sleep 0.1
  done
  if ! grep -q '^ready' "$out"; then
    local rc=0
    kill "$park_pid" 2>/dev/null || true
    wait "$park_pid" 2>/dev/null || rc=$?
    forget "$park_pid"
    echo "compare.sh: parking $n ${side}s failed (weir-bench exit status $rc):" >&2
    cat "$err" >&2
    stop_pid "$WEIR_PID"
    return 1
  fi
  full=$(rss_kib "$WEIR_PID")
  stop_pid "$park_pid"
  stop_pid "$WEIR_PID"
  RSS_ROWS+=("$(printf '%-10s %7s %10s %12s %14s' "${side}s" "$n" "$idle" "$full" \
    "$(awk -v a="$idle" -v b="$full" -v n="$n" 'BEGIN {printf "%.0f", (b - a) * 1024 / n}')")")
}
if [ "$DO_RSS" = 1 ]; then
  for side in sender receiver; do
    for n in 1000 10000; do
      say "RSS with $n parked ${side}s"
      park_rss "$side" "$n"
    done
  done
fi

if [ "${#RSS_ROWS[@]}" -gt 0 ]; then
  echo
  printf '%-10s %7s %10s %12s %14s\n' "parked" "count" "idle KiB" "parked KiB" "bytes/parked"
  printf '%s\n' "${RSS_ROWS[@]}"
fi
