#!/usr/bin/env bash
# Autobahn|Testsuite's fuzzing client against weir's WebSocket echo endpoint
# (ws://127.0.0.1:PORT/sockjs/echo/websocket), over 127.0.0.1 only.
#
#   scripts/autobahn.sh [--no-build] [--debug] [--pipe] [CASES...]
#
# CASES are Autobahn case patterns, separated by spaces or commas; quote them
# so that the shell leaves the '*' alone:
#   scripts/autobahn.sh                  # sections 1-10, the full run
#   scripts/autobahn.sh --debug '1.*,2.*,3.*,4.*,5.*,6.*,7.*,10.*'
#                                        # all but section 9 (CI's subset)
#   scripts/autobahn.sh 9.1.6            # one case
# With --pipe the fuzzing client talks to a WebSocket pipe instead
# (ws://127.0.0.1:PORT/autobahn-pipe), whose other peer is
# scripts/ws-echo-peer.py (Debian's python3 with websocket-client): every
# message goes through weir twice, and closes are passed on; reports go to
# target/autobahn-reports-pipe.
# Sections 12 and 13 (permessage-deflate) are always excluded: weir offers
# no extension. docs/autobahn.md has the measured results and timings.
#
# What it does:
#   1. finds CPython 2.7 (wstest runs on Python 2 only): $AUTOBAHN_PYTHON27,
#      else pyenv's 2.7.18, else a python2.7 on PATH. When there is none and
#      pyenv is there, it installs pyenv's 2.7.18 from the tarball in
#      Debian's python2.7 source package (see install_python27 below); else
#      it fails, saying what to do;
#   2. makes the virtualenv target/autobahn-venv with it (virtualenv
#      16.7.12, which runs on 2.7, from PyPI into target/autobahn-bootstrap)
#      and installs the pinned scripts/autobahn-requirements.txt there, once
#      (and again when that file changes);
#   3. builds weir (cargo build --release; with --debug, cargo build, whose
#      target/debug/weir `cargo test` has already built) unless --no-build;
#   4. starts target/release/weir (target/debug/weir with --debug)
#      --listen 127.0.0.1:<free port> in the background, and stops that
#      PID, and only that one, on exit;
#   5. writes the fuzzingclient spec and runs `wstest -m fuzzingclient`;
#      the reports go to target/autobahn-reports (index.html to read in a
#      browser, index.json and one JSON per case; weir.log, wstest.log);
#   6. prints the count of cases per behaviour and every FAILED case with
#      what Autobahn expected and what weir did, and the cases whose closing
#      handshake was not clean (scripts/autobahn-summary.py; NON-STRICT
#      cases too with AUTOBAHN_LIST_NONSTRICT=1).
#
# Exit status: 0 when no case FAILED (OK, NON-STRICT, INFORMATIONAL and
# UNIMPLEMENTED pass; so does a closing behaviour of UNCLEAN or WRONG CODE,
# which is listed), 1 when a case's behaviour or closing behaviour is
# FAILED, 2 on a setup error, a wstest error or time-out, weir dying, or a
# missing report.
#
# Environment: AUTOBAHN_PYTHON27 (a Python 2.7 interpreter to use),
# AUTOBAHN_VENV (default target/autobahn-venv), AUTOBAHN_OUTDIR (default
# target/autobahn-reports; only its top-level *.json and *.html are
# replaced), AUTOBAHN_TIMEOUT (seconds for wstest as a whole; default
# 3600), AUTOBAHN_LIST_NONSTRICT=1, WEIR_ARGS (more arguments for weir,
# word-split), RUST_LOG (weir's log level; default warn).
#
# Network: 127.0.0.1 for the test; PyPI for the virtualenv; Debian's
# archive (apt-get) only when Python 2.7 has to be installed.

set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

DO_BUILD=1
PROFILE=release
PIPE=0
PATTERNS=()
for arg in "$@"; do
  case "$arg" in
    --no-build) DO_BUILD=0 ;;
    --debug) PROFILE=debug ;;
    --pipe) PIPE=1 ;;
    -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
    -*) echo "autobahn.sh: unknown option $arg" >&2; exit 2 ;;
    *)
      IFS=', ' read -r -a parts <<<"$arg"
      for p in "${parts[@]}"; do [ -n "$p" ] && PATTERNS+=("$p"); done
      ;;
  esac
done
if [ ${#PATTERNS[@]} -eq 0 ]; then
  PATTERNS=("1.*" "2.*" "3.*" "4.*" "5.*" "6.*" "7.*" "8.*" "9.*" "10.*")
fi

VENV=${AUTOBAHN_VENV:-$ROOT/target/autobahn-venv}
BOOT=$ROOT/target/autobahn-bootstrap
REQS=$ROOT/scripts/autobahn-requirements.txt
if [ "$PIPE" = 1 ]; then
  OUTDIR=${AUTOBAHN_OUTDIR:-$ROOT/target/autobahn-reports-pipe}
  /usr/bin/python3 -c 'import websocket' 2>/dev/null \
    || { echo "autobahn.sh: --pipe needs Debian's python3-websocket (apt-get install python3-websocket)" >&2; exit 2; }
else
  OUTDIR=${AUTOBAHN_OUTDIR:-$ROOT/target/autobahn-reports}
fi
TIMEOUT=${AUTOBAHN_TIMEOUT:-3600}
VIRTUALENV_VERSION=16.7.12

say() { echo "== autobahn: $*"; }
die() { echo "autobahn.sh: $*" >&2; exit 2; }

# ---------------------------------------------------------------------------
# 1. Python 2.7
find_python27() {
  local c root
  if [ -n "${AUTOBAHN_PYTHON27:-}" ]; then
    echo "$AUTOBAHN_PYTHON27"
    return
  fi
  root=
  if command -v pyenv >/dev/null 2>&1; then root=$(pyenv root 2>/dev/null || true); fi
  for c in ${root:+"$root/versions/2.7.18/bin/python"} \
           "${PYENV_ROOT:-$HOME/.pyenv}/versions/2.7.18/bin/python" \
           "$(command -v python2.7 2>/dev/null || true)"; do
    # (a pyenv shim for python2.7 is on PATH even where no 2.7 is installed)
    if [ -n "$c" ] && [ -x "$c" ] \
       && "$c" -c 'import sys; sys.exit(sys.version_info[:2] != (2, 7))' >/dev/null 2>&1; then
      echo "$c"
      return
    fi
  done
}

# pyenv's 2.7.18 when the machine has pyenv but not that version.
# `pyenv install 2.7.18` downloads Python-2.7.18 from python.org, which this
# workplace cannot reach; Debian's source package python2.7 (bullseye, the
# last release that has it) carries the very same tarball as its
# python2.7_2.7.18.orig.tar.gz (same SHA-256 as python.org's
# Python-2.7.18.tgz). So: fetch that with apt-get source, from the Debian
# mirror this machine's apt already uses, through a private apt
# configuration under target/ (the system's sources are left alone), put it
# in python-build's cache under the name pyenv looks for, and let
# `pyenv install 2.7.18` build it offline (gcc, make and the -dev packages
# that pyenv's other versions were built with are on these machines).
PY27_TGZ_SHA256=da3080e3b488f648a3d7a4560ddee895284c3380b11d6de75edb986526b9a814
install_python27() {
  local work=$ROOT/target/autobahn-python27 uri tgz
  command -v pyenv >/dev/null 2>&1 || return 1
  command -v apt-get >/dev/null 2>&1 || return 1
  mkdir -p "$work/cache" "$work/apt/lists/partial" "$work/apt/archives/partial" "$work/src"
  tgz=$work/cache/Python-2.7.18.tar.gz
  if ! echo "$PY27_TGZ_SHA256  $tgz" | sha256sum -c --quiet - >/dev/null 2>&1; then
    # The Debian mirror apt is set up with (deb822 or one-line sources).
    uri=$(sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*\/debian\)\/\{0,1\}$/\1/p' \
            /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1)
    [ -n "$uri" ] || uri=$(sed -n 's/^deb[[:space:]]\{1,\}\(\[[^]]*\][[:space:]]\{1,\}\)\{0,1\}\([^[:space:]]*\/debian\)\/\{0,1\}[[:space:]].*/\2/p' \
            /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | head -1)
    [ -n "$uri" ] || { echo "autobahn.sh: no Debian mirror in apt's sources" >&2; return 1; }
    echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $uri bullseye main" \
      >"$work/apt/sources.list"
    local apt=(-q -o "Dir::Etc::SourceList=$work/apt/sources.list" -o Dir::Etc::SourceParts=/nonexistent
               -o "Dir::State::Lists=$work/apt/lists" -o "Dir::Cache=$work/apt" -o Debug::NoLocking=1)
    say "fetching Debian's python2.7 source (bullseye) with apt-get source"
    apt-get "${apt[@]}" update >"$work/apt.log" 2>&1 || { cat "$work/apt.log" >&2; return 1; }
    (cd "$work/src" && apt-get "${apt[@]}" source --download-only python2.7) >>"$work/apt.log" 2>&1 \
      || { tail -5 "$work/apt.log" >&2; return 1; }
    cp "$work/src/python2.7_2.7.18.orig.tar.gz" "$tgz" || return 1
    if ! echo "$PY27_TGZ_SHA256  $tgz" | sha256sum -c --quiet - >/dev/null 2>&1; then
      echo "autobahn.sh: python2.7_2.7.18.orig.tar.gz is not Python-2.7.18.tgz (SHA-256 differs)" >&2
      rm -f "$tgz"
      return 1
    fi
  fi
  say "pyenv install 2.7.18 from that tarball (a few minutes)"
  PYTHON_BUILD_CACHE_PATH=$work/cache _PYTHON_BUILD_FORCE_SKIP_XZ=1 \
    nice -n 10 pyenv install --skip-existing 2.7.18 >"$work/pyenv-install.log" 2>&1 \
    || { tail -20 "$work/pyenv-install.log" >&2; return 1; }
}

venv_ok() {
  [ -x "$VENV/bin/wstest" ] && [ -f "$VENV/.requirements" ] \
    && cmp -s "$VENV/.requirements" "$REQS" \
    && "$VENV/bin/python" -c 'import sys; sys.exit(sys.version_info[:2] != (2, 7))' 2>/dev/null
}

if ! venv_ok; then
  PY27=$(find_python27)
  if [ -z "$PY27" ] && [ -z "${AUTOBAHN_PYTHON27:-}" ]; then
    say "no Python 2.7 here: installing pyenv's 2.7.18"
    install_python27 || echo "autobahn.sh: could not install pyenv's 2.7.18 (above)" >&2
    PY27=$(find_python27)
  fi
  if [ -z "$PY27" ] || ! "$PY27" -c 'import sys, ssl; sys.exit(sys.version_info[:2] != (2, 7))' 2>/dev/null; then
    cat >&2 <<EOF
autobahn.sh: no CPython 2.7 found, and wstest (autobahntestsuite) runs on
Python 2.7 only. Looked for: \$AUTOBAHN_PYTHON27, pyenv's 2.7.18
(\$(pyenv root)/versions/2.7.18/bin/python), python2.7 on PATH.
These machines' image ships pyenv with 2.7.18; without it, this script tries
'pyenv install 2.7.18' from the tarball in Debian's python2.7 source package
(python.org, where pyenv downloads it from, cannot be reached here; Debian 12
has no python2 package), and that failed too. Point AUTOBAHN_PYTHON27 at a
Python 2.7 (with ssl) and run again; docs/autobahn.md says more.
EOF
    exit 2
  fi
  say "Python 2.7: $PY27 ($("$PY27" -V 2>&1))"
  rm -rf "$VENV"
  if [ ! -f "$BOOT/virtualenv.py" ]; then
    say "installing virtualenv==$VIRTUALENV_VERSION into $BOOT"
    rm -rf "$BOOT"
    "$PY27" -m pip install -q --disable-pip-version-check --no-deps \
      --target "$BOOT" "virtualenv==$VIRTUALENV_VERSION" 2>&1 | { grep -v DEPRECATION || true; }
    [ -f "$BOOT/virtualenv.py" ] || die "could not install virtualenv==$VIRTUALENV_VERSION from PyPI"
  fi
  say "creating $VENV"
  PYTHONPATH=$BOOT "$PY27" -m virtualenv --no-download -q "$VENV" >/dev/null
  say "installing scripts/autobahn-requirements.txt (a minute or two: wsaccel builds from source)"
  if ! "$VENV/bin/pip" install --disable-pip-version-check --no-deps -r "$REQS" \
       >"$VENV/pip-install.log" 2>&1; then
    tail -20 "$VENV/pip-install.log" >&2
    die "pip install -r $REQS failed (log: $VENV/pip-install.log)"
  fi
  if ! "$VENV/bin/pip" check --disable-pip-version-check >"$VENV/pip-check.log" 2>&1; then
    cat "$VENV/pip-check.log" >&2
    die "pip check failed in $VENV"
  fi
  "$VENV/bin/wstest" -a >/dev/null 2>&1 || die "wstest does not start in $VENV"
  cp "$REQS" "$VENV/.requirements"
fi
say "$("$VENV/bin/wstest" -a 2>&1 | tr '\n' ' ')"

# ---------------------------------------------------------------------------
# 2. weir
if [ "$DO_BUILD" = 1 ]; then
  if [ "$PROFILE" = release ]; then
    say "cargo build --release"
    cargo build --release --quiet
  else
    say "cargo build"
    cargo build --quiet
  fi
fi
WEIR=$ROOT/target/$PROFILE/weir
[ -x "$WEIR" ] || die "no $WEIR (run without --no-build)"

WEIR_PID=
WSTEST_PID=
PEER_PID=
cleanup() {
  local pid
  for pid in $WSTEST_PID $PEER_PID $WEIR_PID; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A port below the kernel's ephemeral range that no TCP socket uses.
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
  die "no free port found"
}

mkdir -p "$OUTDIR"
# Drop the previous run's report, so that index.json and the case files all
# come from this run.
find "$OUTDIR" -maxdepth 1 -type f \( -name '*.json' -o -name '*.html' \) -delete

PORT=$(free_port)
if [ "$PIPE" = 1 ]; then
  URL="ws://127.0.0.1:$PORT/autobahn-pipe"
else
  URL="ws://127.0.0.1:$PORT/sockjs/echo/websocket"
fi
# shellcheck disable=SC2086
RUST_LOG=${RUST_LOG:-warn} "$WEIR" --listen "127.0.0.1:$PORT" ${WEIR_ARGS:-} \
  >"$OUTDIR/weir.log" 2>&1 &
WEIR_PID=$!
for _ in $(seq 1 200); do
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
  kill -0 "$WEIR_PID" 2>/dev/null || die "weir exited at start: $(cat "$OUTDIR/weir.log")"
  sleep 0.05
done
(exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null || die "nothing listens on 127.0.0.1:$PORT"
say "weir (pid $WEIR_PID) at $URL"
if [ "$PIPE" = 1 ]; then
  /usr/bin/python3 "$ROOT/scripts/ws-echo-peer.py" "$URL" 2>"$OUTDIR/echo-peer.log" &
  PEER_PID=$!
  say "the pipe's other peer: scripts/ws-echo-peer.py (pid $PEER_PID)"
fi

# ---------------------------------------------------------------------------
# 3. the fuzzing client
json_list() {
  local out= p
  for p in "$@"; do out+="${out:+, }\"$p\""; done
  echo "[$out]"
}
SPEC=$OUTDIR/spec.json
cat >"$SPEC" <<EOF
{
  "outdir": "$OUTDIR",
  "servers": [{"agent": "weir", "url": "$URL"}],
  "cases": $(json_list "${PATTERNS[@]}"),
  "exclude-cases": ["12.*", "13.*"],
  "exclude-agent-cases": {}
}
EOF
# wstest waits forever when no case matches: count them first, as wstest
# will (its own CaseSet.parseSpecCases).
ncases=$("$VENV/bin/python" -c '
import json, sys
from autobahntestsuite import fuzzing as f
spec = json.load(open(sys.argv[1]))
cs = f.CaseSet(f.CaseSetname, f.CaseBasename, f.Cases, f.CaseCategories, f.CaseSubCategories)
print(len(cs.parseSpecCases(spec)))' "$SPEC") || die "cannot read the cases of $SPEC"
[ "$ncases" -gt 0 ] || die "no Autobahn case matches ${PATTERNS[*]}"
say "wstest -m fuzzingclient -s $SPEC ($ncases cases: ${PATTERNS[*]})"
start=$(date +%s)
# wstest runs from the report folder (it writes nothing else there), in the
# background so that its PID is known to cleanup; --foreground keeps it in
# this script's process group, so that ^C reaches it too.
(cd "$OUTDIR" && exec timeout --foreground "$TIMEOUT" "$VENV/bin/wstest" -m fuzzingclient -s "$SPEC") \
  >"$OUTDIR/wstest.log" 2>&1 &
WSTEST_PID=$!
set +e
wait "$WSTEST_PID"
rc=$?
set -e
WSTEST_PID=
elapsed=$(( $(date +%s) - start ))
if [ "$rc" -ne 0 ]; then
  tail -20 "$OUTDIR/wstest.log" >&2
  [ "$rc" -eq 124 ] && echo "autobahn.sh: wstest timed out after $TIMEOUT s" >&2
  echo "autobahn.sh: wstest exited $rc (log: $OUTDIR/wstest.log)" >&2
fi
if ! kill -0 "$WEIR_PID" 2>/dev/null; then
  echo "autobahn.sh: weir died during the run; its log:" >&2
  tail -20 "$OUTDIR/weir.log" >&2
  WEIR_PID=
  rc=2
fi
say "wstest took $elapsed s; report: $OUTDIR/index.html"

# ---------------------------------------------------------------------------
# 4. the summary
set +e
"$VENV/bin/python" "$ROOT/scripts/autobahn-summary.py" "$OUTDIR" \
  ${AUTOBAHN_LIST_NONSTRICT:+--nonstrict}
src=$?
set -e
if [ "$src" -ne 0 ]; then exit "$src"; fi
if [ "$rc" -ne 0 ]; then exit 2; fi
exit 0
