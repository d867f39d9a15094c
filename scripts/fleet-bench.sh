#!/usr/bin/env bash
# One weir against a fleet behind HAProxy, in one interleaved run
# (docs/scale-out.md has the figures and how to read them).
#
#   scripts/fleet-bench.sh [--pipes 64] [--size 32M] [--rounds 3]
#
# Three setups, each on free loopback ports, measured in turn round after
# round so that they share the machine's conditions:
#   direct    one weir, the client straight on it
#   haproxy1  one weir behind HAProxy (deploy/haproxy-fleet.cfg): the
#             balancer's own cost
#   haproxy2  two weir behind HAProxy: what a second process buys
# The client is weir-bench (src/bin/weir-bench.rs): --pipes concurrent
# pipes of --size each, every byte checked. CPU comes from /proc/PID/stat
# (utime + stime) of the weir processes and of HAProxy, before and after
# each run, as seconds per GiB relayed. The load average is printed before
# and after, since the machine may be shared.
#
# Needs: cargo build --release (target/release/weir, weir-bench), HAProxy.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
pipes=64 size=32M rounds=3
while [ $# -gt 0 ]; do
  case $1 in
    --pipes) pipes=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    *) echo "usage: $0 [--pipes N] [--size SIZE] [--rounds R]" >&2; exit 2 ;;
  esac
done
weir=$here/target/release/weir bench=$here/target/release/weir-bench
[ -x "$weir" ] && [ -x "$bench" ] || { echo "cargo build --release first" >&2; exit 1; }
tck=$(getconf CLK_TCK)
work=$(mktemp -d /tmp/weir-fleet-bench.XXXXXX)
pids_direct=""

cleanup() {
  for d in "$work/h1" "$work/h2"; do
    [ -f "$d/fleet.txt" ] && bash "$here/scripts/fleet.sh" stop --dir "$d" >/dev/null 2>&1 || true
  done
  [ -n "$pids_direct" ] && kill "$pids_direct" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

ticks() { # sum of utime+stime of the given PIDs
  local t=0 p f
  for p in "$@"; do
    f=$(sed 's/^.*) //' "/proc/$p/stat")
    t=$(( t + $(echo "$f" | awk '{print $12 + $13}') ))
  done
  echo $t
}

# The direct weir.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
RUST_LOG=warn "$weir" --listen "127.0.0.1:$port" </dev/null >"$work/direct.log" 2>&1 &
pids_direct=$!
for _ in $(seq 100); do curl -fsS -o /dev/null "http://127.0.0.1:$port/healthz" 2>/dev/null && break; sleep 0.05; done
direct_addr=127.0.0.1:$port

fleet_start() { # DIR N -> prints nothing; fills DIR/fleet.txt
  bash "$here/scripts/fleet.sh" start -n "$2" --dir "$1" --weir "$weir" >/dev/null
}
fleet_start "$work/h1" 1
fleet_start "$work/h2" 2
lb() { awk '$1=="haproxy"{print $3}' "$1/fleet.txt"; }
relays() { awk '$1=="weir"{print $3}' "$1/fleet.txt" | tr '\n' ' '; }
hapid() { awk '$1=="haproxy"{print $2}' "$1/fleet.txt"; }

echo "# fleet-bench: $pipes pipes x $size, $rounds rounds, $(nproc) CPUs, $(date -u +%FT%TZ)"
echo "# load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-9s %5s %9s %14s %16s %14s\n' setup round GiB/s relay_cpu_s/GiB haproxy_cpu_s/GiB total_cpu_s/GiB
results=$work/results
: > "$results"
for r in $(seq "$rounds"); do
  for setup in direct haproxy1 haproxy2; do
    case $setup in
      direct) addr=$direct_addr; rp=$pids_direct; hp="" ;;
      haproxy1) addr=$(lb "$work/h1"); rp=$(relays "$work/h1"); hp=$(hapid "$work/h1") ;;
      haproxy2) addr=$(lb "$work/h2"); rp=$(relays "$work/h2"); hp=$(hapid "$work/h2") ;;
    esac
    # shellcheck disable=SC2086
    r0=$(ticks $rp); h0=0; [ -n "$hp" ] && h0=$(ticks "$hp")
    out=$("$bench" --url "http://$addr/b$r$setup/" --pipes "$pipes" --size "$size" --quiet --timeout 600)
    # shellcheck disable=SC2086
    r1=$(ticks $rp); h1=0; [ -n "$hp" ] && h1=$(ticks "$hp")
    bytes=$(echo "$out" | awk '$1=="bytes"{print $2}')
    gibs=$(echo "$out" | awk '$1=="gib_per_s"{print $2}')
    line=$(awk -v b="$bytes" -v rt=$((r1 - r0)) -v ht=$((h1 - h0)) -v tck="$tck" -v g="$gibs" \
      -v s="$setup" -v r="$r" 'BEGIN {
        gib = b / 1073741824; rc = rt / tck / gib; hc = ht / tck / gib
        printf "%-9s %5d %9.3f %14.3f %16.3f %14.3f\n", s, r, g, rc, hc, rc + hc }')
    echo "$line"
    echo "$line" >> "$results"
  done
done
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# medians"
for setup in direct haproxy1 haproxy2; do
  awk -v s="$setup" '$1==s' "$results" | sort -k3 -n | awk -v n="$rounds" '
    { g[NR]=$3; rc[NR]=$4; hc[NR]=$5; t[NR]=$6; name=$1 }
    END { m = int((n + 1) / 2); printf "%-9s %5s %9.3f %14.3f %16.3f %14.3f\n", name, "med", g[m], rc[m], hc[m], t[m] }'
done
