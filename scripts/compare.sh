#!/usr/bin/env bash
# Compare weir with a plain TCP relay (socat) and raw loopback TCP, in one run,
# on this machine, over 127.0.0.1 only.
#
#   scripts/compare.sh [--size 1G] [--runs 5] [--pipes 64] [--relay URL [--relay-pid PID]]
#                      [--no-rss] [--no-build]
#
# What it measures (every figure is the median of --runs runs of weir-bench):
#   - raw loopback: weir-bench's senders write straight into its own listener
#     (one TCP hop; the ceiling for any relay on this machine);
#   - socat: `socat TCP-LISTEN:A,fork TCP:127.0.0.1:B` between weir-bench's
#     senders and its listener on B: bytes cross one extra process and one
#     extra TCP hop, exactly as they do through weir, with no HTTP at all;
#   - weir: PUT with Content-Length (splice(2) path, and through the ring
#     with --no-splice), PUT chunked, and --pipes pipes at once, with weir's
#     own CPU seconds per GiB (from /proc/PID/stat);
#   - one byte crossing each path, p50 and p99;
#   - weir's resident set idle and with 1,000 and 10,000 parked senders and
#     receivers (a fresh weir for each, so that one figure does not inherit
#     another's freed memory), in bytes per parked client;
#   - with --relay URL, another piping-server-style relay the user runs.
#
# socat runs with `-b 65536`, the size of weir's ring (its default is 8 KiB),
# and `backlog=1024` as weir listens (with socat's default of 5, 64 clients
# connecting at once overflow its accept queue and some are reset).
# The clients share the machine's cores with the relay under test, so the
# figures are for this machine, not a ceiling of weir.
#
# Only processes this script started are stopped, by PID, on exit. Every
# measurement runs under `timeout`.

set -euo pipefail
cd "$(dirname "$0")/.."

SIZE=1G
RUNS=5
PIPES=64
RELAY_URL=
RELAY_PID=
DO_RSS=1
DO_BUILD=1
SOCAT_BUF=65536
STEP_TIMEOUT=300

usage() { sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --size) SIZE=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --pipes) PIPES=$2; shift 2 ;;
    --relay) RELAY_URL=$2; shift 2 ;;
    --relay-pid) RELAY_PID=$2; shift 2 ;;
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

if ! command -v socat >/dev/null; then
  say "installing socat from Debian"
  apt-get update -qq && apt-get install -y -qq socat >/dev/null
fi

# Parked clients need a file descriptor each, on both sides.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
say "open-file limit $(ulimit -n)"

start_weir --no-splice
RING_PID=$WEIR_PID
RING_PORT=$WEIR_PORT
start_weir
RAW_PORT=$(free_port)
SOCAT_PORT=$(free_port)
socat -b "$SOCAT_BUF" "TCP-LISTEN:$SOCAT_PORT,bind=127.0.0.1,reuseaddr,fork,backlog=1024" \
  "TCP:127.0.0.1:$RAW_PORT" 2>>"$TMP/socat.log" &
SOCAT_PID=$!
PIDS+=("$SOCAT_PID")
wait_port "$SOCAT_PORT"

# Cases run round-robin: round 1 of every case, then round 2, and so on, so
# that load from elsewhere on the machine falls on every case alike.
CASES=()
declare -A CASE_ARGS
add() { # NAME ARGS... (no argument may hold a space)
  local name=$1
  shift
  CASES+=("$name")
  CASE_ARGS[$name]="$*"
  : >"$TMP/$name.out"
}

run_cases() {
  local i name args
  for i in $(seq 1 "$RUNS"); do
    say "round $i of $RUNS: ${CASES[*]}"
    for name in "${CASES[@]}"; do
      read -ra args <<<"${CASE_ARGS[$name]}"
      if ! timeout "$STEP_TIMEOUT" "$BIN/weir-bench" --quiet --timeout $((STEP_TIMEOUT - 20)) \
        "${args[@]}" >"$TMP/$name.$i" 2>"$TMP/$name.err"; then
        echo "compare.sh: $name run $i failed: weir-bench ${args[*]}" >&2
        cat "$TMP/$name.err" >&2
        return 1
      fi
      cat "$TMP/$name.$i" >>"$TMP/$name.out"
    done
  done
}

# med NAME KEY: the median of KEY over NAME's runs, or "-".
med() {
  awk -v k="$2" '$1 == k {print $2}' "$TMP/$1.out" 2>/dev/null | median
}

RAW=(--raw --raw-listen "127.0.0.1:$RAW_PORT")
SOCAT=(--raw --raw-listen "127.0.0.1:$RAW_PORT" --raw-connect "127.0.0.1:$SOCAT_PORT" --relay-pid "$SOCAT_PID")
WEIR=(--url "http://127.0.0.1:$WEIR_PORT/" --relay-pid "$WEIR_PID")
RING=(--url "http://127.0.0.1:$RING_PORT/" --relay-pid "$RING_PID")

add raw "${RAW[@]}" --size "$SIZE"
add socat "${SOCAT[@]}" --size "$SIZE"
add weir_cl "${WEIR[@]}" --size "$SIZE"
add weir_cl_ring "${RING[@]}" --size "$SIZE"
add weir_chunked "${WEIR[@]}" --size "$SIZE" --chunked
# --pipes N moves SIZE in total, SIZE/N per pipe, so totals compare.
per_pipe() { awk -v s="$1" -v n="$2" 'BEGIN {
  m = 1; u = toupper(substr(s, length(s)));
  if (u == "K") m = 1024; else if (u == "M") m = 1048576; else if (u == "G") m = 1073741824;
  if (m > 1) s = substr(s, 1, length(s) - 1);
  printf "%d\n", s * m / n }'; }
PIPE_SIZE=$(per_pipe "$SIZE" "$PIPES")
add socat_pipes "${SOCAT[@]}" --size "$PIPE_SIZE" --pipes "$PIPES"
add weir_pipes "${WEIR[@]}" --size "$PIPE_SIZE" --pipes "$PIPES"
add raw_lat "${RAW[@]}" --size 0 --latency
add socat_lat --raw --raw-listen "127.0.0.1:$RAW_PORT" --raw-connect "127.0.0.1:$SOCAT_PORT" --size 0 --latency
add weir_lat --url "http://127.0.0.1:$WEIR_PORT/" --size 0 --latency
if [ -n "$RELAY_URL" ]; then
  OTHER=(--url "$RELAY_URL")
  [ -n "$RELAY_PID" ] && OTHER+=(--relay-pid "$RELAY_PID")
  add other_cl "${OTHER[@]}" --size "$SIZE"
  add other_chunked "${OTHER[@]}" --size "$SIZE" --chunked
  add other_lat --url "$RELAY_URL" --size 0 --latency
fi
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
run_cases
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
stop_pid "$SOCAT_PID"
stop_pid "$WEIR_PID"
stop_pid "$RING_PID"

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

# ---------------------------------------------------------------------------
GIB_SOCAT=$(med socat gib_per_s)
GIB_RAW=$(med raw gib_per_s)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.2fx", a / b }'; }

row() { # label name
  local g
  g=$(med "$2" gib_per_s)
  printf '%-34s %8s %9s %9s %12s %12s\n' "$1" "$g" "$(ratio "$g" "$GIB_SOCAT")" \
    "$(ratio "$g" "$GIB_RAW")" "$(med "$2" relay_cpu_s_per_gib)" "$(med "$2" client_cpu_s_per_gib)"
}
lat_row() { # label name
  printf '%-34s %10s %10s\n' "$1" "$(med "$2" latency_p50_us)" "$(med "$2" latency_p99_us)"
}

echo
echo "weir compare: $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(uname -r), $RUNS runs each (medians)"
echo "load average before $LOAD_BEFORE, after $LOAD_AFTER (other work on the machine skews every figure)"
echo "weir $(git describe --always --dirty 2>/dev/null || echo '?'), $(socat -V 2>/dev/null | awk '/socat version/ {print "socat", $3; exit}') -b $SOCAT_BUF, --size $SIZE"
echo
printf '%-34s %8s %9s %9s %12s %12s\n' "throughput" "GiB/s" "vs socat" "vs raw" "relay s/GiB" "client s/GiB"
row "raw loopback, 1 hop ($SIZE)" raw
row "socat relay, 1 pipe ($SIZE)" socat
row "weir Content-Length, 1 pipe" weir_cl
row "  the same, --no-splice (ring)" weir_cl_ring
row "weir chunked, 1 pipe" weir_chunked
row "socat, $PIPES pipes ($SIZE total)" socat_pipes
row "weir Content-Length, $PIPES pipes" weir_pipes
if [ -n "$RELAY_URL" ]; then
  row "other relay Content-Length" other_cl
  row "other relay chunked" other_chunked
fi
echo
printf '%-34s %10s %10s\n' "one byte across" "p50 us" "p99 us"
lat_row "raw loopback" raw_lat
lat_row "socat relay" socat_lat
lat_row "weir (1-byte chunk)" weir_lat
if [ -n "$RELAY_URL" ]; then
  lat_row "other relay (1-byte chunk)" other_lat
fi
if [ "${#RSS_ROWS[@]}" -gt 0 ]; then
  echo
  printf '%-10s %7s %10s %12s %14s\n' "parked" "count" "idle KiB" "parked KiB" "bytes/parked"
  printf '%s\n' "${RSS_ROWS[@]}"
fi
