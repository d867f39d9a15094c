#!/usr/bin/env bash
# Run weir's fuzz targets: fuzz/run.sh SECONDS [TARGET...]
#
# Builds the targets (cargo-fuzz, installed if missing), replays the saved
# regressions in fuzz/regressions/, then fuzzes each target (all by default)
# for SECONDS from its checked-in seeds. Generated inputs go to the scratch
# corpus fuzz/corpus-work/<target>/ (ignored by git), never fuzz/corpus/.
# Prints execs/s, cov and ft per target; exits non-zero if any target crashed.
#
# Runs under `nice -n 19` (FUZZ_NICE to change) and builds with one job
# unless CI is set or CARGO_BUILD_JOBS says otherwise: the machines are
# shared. Extra libFuzzer flags can be passed in FUZZ_ARGS.
set -euo pipefail

usage="usage: fuzz/run.sh SECONDS [TARGET...]"
secs=${1:?$usage}
[[ $secs =~ ^[0-9]+$ && $secs -gt 0 ]] || { echo "$usage" >&2; exit 2; }
shift

fuzz_dir=$(cd "$(dirname "$0")" && pwd)
cd "$fuzz_dir/.."
start=$(date +%s)
nice_cmd=(nice -n "${FUZZ_NICE:-19}")

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  t=$(date +%s)
  "${nice_cmd[@]}" cargo install cargo-fuzz --locked
  echo "== cargo-fuzz installed in $(($(date +%s) - t)) s"
fi
echo "== $(cargo fuzz --version), $(rustc --version)"

# cargo-fuzz passes nightly-only flags (-Zsanitizer, sancov); a stable
# toolchain accepts them with RUSTC_BOOTSTRAP. Harmless on nightly.
export RUSTC_BOOTSTRAP=1
if [[ -z ${CI:-} ]]; then
  export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-1}
fi

if [[ $# -gt 0 ]]; then
  targets=("$@")
else
  targets=()
  for f in fuzz/fuzz_targets/*.rs; do
    targets+=("$(basename "$f" .rs)")
  done
fi
for t in "${targets[@]}"; do
  [[ -f fuzz/fuzz_targets/$t.rs ]] || { echo "no fuzz target '$t'" >&2; exit 2; }
done

echo "== building ${targets[*]}"
t=$(date +%s)
if [[ $# -gt 0 ]]; then
  for target in "${targets[@]}"; do
    "${nice_cmd[@]}" cargo fuzz build "$target"
  done
else
  "${nice_cmd[@]}" cargo fuzz build
fi
echo "== built in $(($(date +%s) - t)) s"

failed=()
summary=()
mkdir -p fuzz/corpus-work
for target in "${targets[@]}"; do
  log=fuzz/corpus-work/$target.log
  regressions=(fuzz/regressions/"$target"-*.bin)
  if [[ -e ${regressions[0]} ]]; then
    echo "== $target: replaying ${#regressions[@]} regression input(s)"
    if ! "${nice_cmd[@]}" cargo fuzz run "$target" "${regressions[@]}" >"$log" 2>&1; then
      tail -n 40 "$log"
      echo "!! $target fails a saved regression (log: $log)"
      failed+=("$target")
      summary+=("$(printf '%-10s %10s %10s %8s %8s  %s' "$target" - - - - "REGRESSION")")
      continue
    fi
  fi
  work=fuzz/corpus-work/$target
  mkdir -p "$work"
  cp fuzz/corpus/"$target"/seed-* "$work"/
  echo "== $target: fuzzing ${secs}s from $(find "$work" -type f | wc -l) inputs"
  rc=0
  # shellcheck disable=SC2086 # FUZZ_ARGS is a list of flags
  "${nice_cmd[@]}" cargo fuzz run "$target" "$work" -- \
    -max_total_time="$secs" -timeout=10 -print_final_stats=1 ${FUZZ_ARGS:-} \
    >"$log" 2>&1 || rc=$?
  last=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -n 1 || true)
  cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$last")
  ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$last")
  corp=$(sed -nE 's/.* corp: ([0-9]+).*/\1/p' <<<"$last")
  execs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+).*/\1/p' "$log" | tail -n 1)
  rate=$(sed -nE 's/^stat::average_exec_per_sec: *([0-9]+).*/\1/p' "$log" | tail -n 1)
  result=ok
  if [[ $rc -ne 0 ]]; then
    result="CRASH (rc $rc)"
    failed+=("$target")
    grep -E 'panicked at|^SUMMARY|ERROR: libFuzzer|ERROR: AddressSanitizer' "$log" | head -n 5 || true
    grep -E 'Test unit written to|^Reproduce with|cargo fuzz run' "$log" | tail -n 3 || true
    echo "!! $target crashed (log: $log)"
  fi
  summary+=("$(printf '%-10s %10s %10s %8s %8s  %s' "$target" "${execs:--}" "${rate:--}" "${cov:--}" "${ft:--}" "$result (corpus ${corp:--})")")
done

echo
echo "== fuzz/run.sh $secs: per target"
printf '%-10s %10s %10s %8s %8s  %s\n' target execs exec/s cov ft result
printf '%s\n' "${summary[@]}"
echo "== fuzz/run.sh done in $(($(date +%s) - start)) s"
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "!! failed: ${failed[*]}"
  exit 1
fi
