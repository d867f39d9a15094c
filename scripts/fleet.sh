#!/usr/bin/env bash
# A local fleet: N weir processes and HAProxy (or nginx) in front of them,
# all on free ports of 127.0.0.1. For trying the fleet recipes
# (deploy/haproxy-fleet.cfg, deploy/nginx-fleet.conf; docs/scale-out.md)
# and for tests/it/fleet.rs.
#
#   scripts/fleet.sh start [-n N] [--proxy haproxy|nginx] [--dir DIR] [--weir BIN] [-- WEIR_FLAGS...]
#       Starts weir --instance w1 .. wN (default 3; with --sender-progress
#       held, then WEIR_FLAGS) and the balancer; prints
#       one line per process ("weir w1 PID ADDR", "haproxy PID ADDR",
#       "stats URL" with HAProxy) and keeps them in DIR/fleet.txt. DIR is a
#       new temp dir unless given. Nothing is left running if a step fails.
#   scripts/fleet.sh stop --dir DIR
#       Stops every process listed in DIR/fleet.txt by its PID (TERM, then
#       KILL after 10 s).
#   scripts/fleet.sh restart NAME --dir DIR
#       Starts member NAME (e.g. w2) again on its address, with its flags,
#       when it is not running; prints its new line.
#   scripts/fleet.sh config haproxy|nginx OUTDIR LISTEN NAME=ADDR...
#       Writes the balancer's configuration for this fleet list to OUTDIR
#       (haproxy.cfg or nginx-fleet.conf, and weir-instances.map) from the
#       recipe in deploy/: the "fleet:" sections and the map come from the
#       list, the rest is the recipe as it is. For real deployments too.
#
# Try it:
#   cargo build --release
#   scripts/fleet.sh start -n 3 --dir /tmp/fleet
#   curl -T file http://ADDR/some/path & curl http://ADDR/some/path
#   scripts/fleet.sh stop --dir /tmp/fleet
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
HAPROXY=${HAPROXY:-/usr/sbin/haproxy}
NGINX=${NGINX:-/usr/sbin/nginx}
MAP_PATH_HAPROXY=/etc/haproxy/weir-instances.map
MAP_PATH_NGINX=/etc/nginx/weir-instances.map

die() { echo "fleet.sh: $*" >&2; exit 1; }

# A free TCP port on 127.0.0.1 (bound and released; a clash in between is
# caught when the process fails to bind).
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Replace the lines between "# --- fleet: WHAT" and the next "# --- fleet: end"
# in stdin with the contents of file $2.
replace_section() {
  awk -v what="# --- fleet: $1" -v file="$2" '
    index($0, what) { print; while ((getline l < file) > 0) print l; skip = 1; next }
    skip && index($0, "# --- fleet: end") { skip = 0 }
    !skip { print }'
}

# config KIND OUTDIR LISTEN NAME=ADDR...
config() {
  local kind=$1 out=$2 listen=$3; shift 3
  [ $# -ge 1 ] || die "config needs at least one NAME=ADDR"
  mkdir -p "$out"
  local servers="$out/.servers" instances="$out/.instances" map="$out/weir-instances.map"
  : > "$servers"; : > "$instances"; : > "$map"
  local m name addr
  for m in "$@"; do
    name=${m%%=*}; addr=${m#*=}
    [[ $name =~ ^[A-Za-z0-9_]{1,32}$ ]] || die "instance name '$name': 1 to 32 of A-Z a-z 0-9 _"
    case $kind in
      haproxy)
        echo "    server $name $addr" >> "$servers"
        {
          echo "backend weir_$name"
          echo "    http-request return status 404 content-type \"text/plain; charset=utf-8\" string \"[ERROR] The relay process $name that made this ID is down; what it held is gone. Start again.\" if { nbsrv() eq 0 }"
          echo "    server $name $addr track weir/$name"
        } >> "$instances"
        echo "$name weir_$name" >> "$map"
        ;;
      nginx)
        echo "    server $addr max_fails=1 fail_timeout=5s;" >> "$servers"
        echo "upstream weir_$name { server $addr; }" >> "$instances"
        echo "$name weir_$name;" >> "$map"
        ;;
    esac
  done
  case $kind in
    haproxy)
      replace_section servers "$servers" < "$here/deploy/haproxy-fleet.cfg" \
        | replace_section instances "$instances" \
        | sed -e "s#$MAP_PATH_HAPROXY#$map#g" -e "s#^    bind :80\$#    bind $listen#" \
        > "$out/haproxy.cfg"
      grep -q "bind $listen" "$out/haproxy.cfg" || die "the recipe has no 'bind :80' line"
      ;;
    nginx)
      replace_section servers "$servers" < "$here/deploy/nginx-fleet.conf" \
        | replace_section instances "$instances" \
        | sed -e "s#$MAP_PATH_NGINX#$map#g" -e "s#^    listen 80;\$#    listen $listen;#" \
        > "$out/nginx-fleet.conf"
      grep -q "listen $listen;" "$out/nginx-fleet.conf" || die "the recipe has no 'listen 80;' line"
      ;;
    *) die "config: haproxy or nginx, not '$kind'" ;;
  esac
  rm -f "$servers" "$instances"
}

# Whether PID runs (a killed process whose parent has not reaped it yet is
# a zombie: it holds no socket and counts as gone).
alive() {
  local state
  state=$(awk '{ sub(/^.*\) /, ""); print $1 }' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "$state" != Z ]
}

# wait_http ADDR PID /PATH [CURL_FLAG]: wait (10 s) until http://ADDR/PATH
# answers (with -f: with a 2xx), while PID lives; fail otherwise.
wait_http() {
  local addr=$1 pid=$2 path=$3 flag=${4:-} i
  for i in $(seq 200); do
    if curl $flag -sS -m 1 -o /dev/null "http://$addr$path" 2>/dev/null; then return 0; fi
    alive "$pid" || return 1
    sleep 0.05
  done
  return 1
}

# start_member DIR NAME ADDR: start weir, append its line to fleet.txt.
start_member() {
  local dir=$1 name=$2 addr=$3 weir args
  weir=$(cat "$dir/weir.bin")
  mapfile -t args < "$dir/weir.args"
  RUST_LOG=${RUST_LOG:-warn} "$weir" --listen "$addr" --instance "$name" "${args[@]}" \
    </dev/null >>"$dir/$name.log" 2>&1 &
  local pid=$!
  echo "weir $name $pid $addr" >> "$dir/fleet.txt"
  wait_http "$addr" "$pid" /healthz -f || die "weir $name did not start on $addr (log: $dir/$name.log)"
  echo "weir $name $pid $addr"
}

stop() {
  local dir=$1 pids=() kind name pid rest i
  [ -f "$dir/fleet.txt" ] || die "no fleet in $dir"
  while read -r kind name pid rest; do
    case $kind in
      weir) pids+=("$pid") ;;
      haproxy|nginx) pids+=("$name") ;;
    esac
  done < "$dir/fleet.txt"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for i in $(seq 100); do
    local alive=0
    for pid in "${pids[@]}"; do if alive "$pid"; then alive=1; fi; done
    [ $alive = 0 ] && break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  echo "stopped ${#pids[@]} process(es)"
}

start() {
  local n=3 proxy=haproxy dir="" weir="$here/target/release/weir"
  while [ $# -gt 0 ]; do
    case $1 in
      -n) n=$2; shift 2 ;;
      --proxy) proxy=$2; shift 2 ;;
      --dir) dir=$2; shift 2 ;;
      --weir) weir=$2; shift 2 ;;
      --) shift; break ;;
      *) die "start: unknown argument '$1'" ;;
    esac
  done
  [[ $n =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] || die "-n must be a number of processes"
  [ -x "$weir" ] || die "no weir binary at $weir (cargo build --release, or --weir BIN)"
  case $proxy in
    haproxy) [ -x "$HAPROXY" ] || die "$HAPROXY is missing (apt-get install haproxy)" ;;
    nginx) [ -x "$NGINX" ] || die "$NGINX is missing (apt-get install nginx)" ;;
    *) die "--proxy haproxy or nginx" ;;
  esac
  [ -n "$dir" ] || dir=$(mktemp -d /tmp/weir-fleet.XXXXXX)
  mkdir -p "$dir"
  # nginx workers run as nobody when started by root: they read the map.
  chmod 755 "$dir"
  dir=$(cd "$dir" && pwd)
  [ ! -s "$dir/fleet.txt" ] || die "$dir/fleet.txt lists a fleet; stop it first"
  : > "$dir/fleet.txt"
  echo "$weir" > "$dir/weir.bin"
  # Held sender responses: through HAProxy, an upload whose response starts
  # before its body ends (curl -T asks Expect: 100-continue) stalls near its
  # end (docs/scale-out.md). Flags given after -- come later and win.
  printf '%s\n' --sender-progress held "$@" > "$dir/weir.args"
  # A failed step (die exits) stops what was started.
  trap 'stop "$dir" >/dev/null 2>&1 || true' EXIT
  local members=() i addr
  for i in $(seq "$n"); do
    addr="127.0.0.1:$(free_port)"
    start_member "$dir" "w$i" "$addr"
    members+=("w$i=$addr")
  done
  local listen pid
  listen="127.0.0.1:$(free_port)"
  config "$proxy" "$dir" "$listen" "${members[@]}"
  case $proxy in
    haproxy)
      local stats="127.0.0.1:$(free_port)"
      printf 'listen stats\n    mode http\n    bind %s\n    stats enable\n    stats uri /\n    stats refresh 1s\n' \
        "$stats" > "$dir/stats.cfg"
      "$HAPROXY" -db -f "$dir/haproxy.cfg" -f "$dir/stats.cfg" </dev/null >"$dir/haproxy.log" 2>&1 &
      pid=$!
      echo "haproxy $pid $listen" >> "$dir/fleet.txt"
      wait_http "$listen" "$pid" / || die "haproxy did not start (log: $dir/haproxy.log)"
      echo "haproxy $pid $listen"
      echo "stats http://$stats/"
      ;;
    nginx)
      cat > "$dir/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/nginx-error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $dir/client_body_temp;
    proxy_temp_path $dir/proxy_temp;
    fastcgi_temp_path $dir/fastcgi_temp;
    uwsgi_temp_path $dir/uwsgi_temp;
    scgi_temp_path $dir/scgi_temp;
    include $dir/nginx-fleet.conf;
}
EOF
      "$NGINX" -p "$dir" -c "$dir/nginx.conf" </dev/null >"$dir/nginx.log" 2>&1 &
      pid=$!
      echo "nginx $pid $listen" >> "$dir/fleet.txt"
      wait_http "$listen" "$pid" / || die "nginx did not start (log: $dir/nginx-error.log)"
      echo "nginx $pid $listen"
      ;;
  esac
  trap - EXIT
  echo "dir $dir"
}

restart() {
  local name=$1 dir=$2 kind n pid addr found=""
  [ -f "$dir/fleet.txt" ] || die "no fleet in $dir"
  while read -r kind n pid addr; do
    if [ "$kind" = weir ] && [ "$n" = "$name" ]; then found="$pid $addr"; fi
  done < "$dir/fleet.txt"
  [ -n "$found" ] || die "no member $name in $dir/fleet.txt"
  pid=${found% *}; addr=${found#* }
  if alive "$pid"; then die "$name (pid $pid) is still running"; fi
  start_member "$dir" "$name" "$addr"
}

cmd=${1:-}; [ $# -gt 0 ] && shift
case $cmd in
  start) start "$@" ;;
  stop)
    [ "${1:-}" = --dir ] && [ -n "${2:-}" ] || die "stop --dir DIR"
    stop "$2" ;;
  restart)
    [ -n "${1:-}" ] && [ "${2:-}" = --dir ] && [ -n "${3:-}" ] || die "restart NAME --dir DIR"
    restart "$1" "$3" ;;
  config) [ $# -ge 4 ] || die "config haproxy|nginx OUTDIR LISTEN NAME=ADDR..."; config "$@" ;;
  *) sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
