#!/usr/bin/env bash
# One pipe of --size bytes through weir over plain HTTP, over weir's own TLS,
# and over Caddy terminating TLS in front of a plain weir: in one
# interleaved run, on 127.0.0.1 only, with curl as sender and receiver.
#
#   scripts/tls-compare.sh [--size 1G] [--runs 5] [--no-build]
#
# Prints, per path, the median (and range) of: throughput, weir's own CPU
# seconds per GiB, Caddy's, and the whole machine's (all of /proc/stat's
# busy time, softirq included, so the clients' TLS work counts too). The
# certificate is a fresh ECDSA P-256 one from `openssl`; curl trusts it with
# --cacert. Needs curl, openssl and caddy (Debian: caddy). Only processes
# this script started are stopped, by PID, on exit; every transfer runs
# under `timeout`.

set -euo pipefail
cd "$(dirname "$0")/.."

SIZE=1G
RUNS=5
DO_BUILD=1
STEP_TIMEOUT=300

while [ $# -gt 0 ]; do
  case "$1" in
    --size) SIZE=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --no-build) DO_BUILD=0; shift ;;
    -h|--help) sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "tls-compare.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

for cmd in curl openssl caddy python3; do
  command -v "$cmd" >/dev/null || { echo "tls-compare.sh: $cmd is needed" >&2; exit 2; }
done

if [ "$DO_BUILD" = 1 ]; then
  cargo build --release --features tls --bin weir >&2
fi
WEIR=${CARGO_TARGET_DIR:-target}/release/weir

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
  -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1 \
  -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
head -c "$SIZE" /dev/urandom > "$WORK/body"
BYTES=$(stat -c %s "$WORK/body")

PLAIN=$(free_port); TLS=$(free_port); CADDY=$(free_port)
"$WEIR" --listen "127.0.0.1:$PLAIN" --tls-listen "127.0.0.1:$TLS" \
  --tls-cert "$WORK/cert.pem" --tls-key "$WORK/key.pem" --max-upload-bytes 0 \
  2>"$WORK/weir.log" &
WEIR_PID=$!; PIDS+=("$WEIR_PID")

cat > "$WORK/Caddyfile" <<EOF
{
	admin off
	auto_https off
}
https://127.0.0.1:$CADDY {
	tls $WORK/cert.pem $WORK/key.pem
	reverse_proxy 127.0.0.1:$PLAIN {
		flush_interval -1
	}
}
EOF
XDG_DATA_HOME=$WORK XDG_CONFIG_HOME=$WORK caddy run --config "$WORK/Caddyfile" --adapter caddyfile \
  >"$WORK/caddy.log" 2>&1 &
CADDY_PID=$!; PIDS+=("$CADDY_PID")

for _ in $(seq 100); do
  if curl -sf --cacert "$WORK/cert.pem" "https://127.0.0.1:$CADDY/healthz" >/dev/null 2>&1 &&
     curl -sf --cacert "$WORK/cert.pem" "https://127.0.0.1:$TLS/healthz" >/dev/null 2>&1; then
    break
  fi
  sleep 0.1
done

for p in "$WEIR_PID" "$CADDY_PID"; do
  if ! kill -0 "$p" 2>/dev/null; then
    echo "tls-compare.sh: a server did not start:" >&2
    cat "$WORK/weir.log" "$WORK/caddy.log" >&2
    exit 1
  fi
done

TICK=$(getconf CLK_TCK)
cpu_of() { awk -v t="$TICK" '{ printf "%.4f\n", ($14 + $15) / t }' "/proc/$1/stat"; }
busy() { awk -v t="$TICK" '/^cpu / { printf "%.4f\n", ($2+$3+$4+$7+$8+$9) / t }' /proc/stat; }

declare -A RES
one() { # mode url
  local mode=$1 url=$2 path=/bench-$RANDOM$RANDOM
  local w0 c0 m0 t0 w1 c1 m1 t1
  w0=$(cpu_of "$WEIR_PID"); c0=$(cpu_of "$CADDY_PID"); m0=$(busy); t0=$(date +%s.%N)
  timeout "$STEP_TIMEOUT" curl -sS --cacert "$WORK/cert.pem" -o /dev/null "$url$path" &
  local recv=$!
  timeout "$STEP_TIMEOUT" curl -sS --cacert "$WORK/cert.pem" -o /dev/null -T "$WORK/body" "$url$path"
  wait "$recv"
  t1=$(date +%s.%N); w1=$(cpu_of "$WEIR_PID"); c1=$(cpu_of "$CADDY_PID"); m1=$(busy)
  RES[$mode]+="$(python3 -c "
b=$BYTES/2**30; s=$t1-$t0
print(f'{b/s:.3f},{($w1-$w0)/b:.3f},{($c1-$c0)/b:.3f},{($m1-$m0)/b:.3f}')") "
}

echo "# tls-compare: $SIZE, $RUNS interleaved runs, curl $(curl --version | head -1 | cut -d' ' -f2), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
for i in $(seq "$RUNS"); do
  one plain "http://127.0.0.1:$PLAIN"
  one weir-tls "https://127.0.0.1:$TLS"
  one caddy-tls "https://127.0.0.1:$CADDY"
done

python3 - "$RUNS" plain "${RES[plain]}" weir-tls "${RES[weir-tls]}" caddy-tls "${RES[caddy-tls]}" <<'EOF'
import statistics, sys
args = sys.argv[2:]
print(f"{'path':<12} {'GiB/s':>18} {'weir CPU s/GiB':>18} {'Caddy CPU s/GiB':>18} {'machine s/GiB':>18}")
base = None
for name, data in zip(args[::2], args[1::2]):
    rows = [list(map(float, r.split(','))) for r in data.split()]
    cols = list(zip(*rows))
    def cell(c):
        return f"{statistics.median(c):.3f} ({min(c):.2f}-{max(c):.2f})"
    print(f"{name:<12} {cell(cols[0]):>18} {cell(cols[1]):>18} {cell(cols[2]):>18} {cell(cols[3]):>18}")
EOF
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
