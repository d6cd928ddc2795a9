#!/usr/bin/env bash
# Fuzzes ec2ssh's decoders and the simulator's request parsers with cargo-fuzz
# (libFuzzer) and reports, per target, the executions run and the findings.
# Not part of scripts/test.sh: each crashing input it reports belongs in
# fuzz/regressions/TARGET/, which the test suite replays (tests/it/fuzz_regressions.rs).
#
#   scripts/fuzz.sh [-t SECONDS | -n RUNS] [TARGET...]     (default: -t 60, every target)
#
# Needs `cargo install cargo-fuzz` (0.13). Works on a stable toolchain: with
# --sanitizer none, cargo-fuzz asks rustc only for libFuzzer's coverage
# instrumentation (-Cpasses=sancov-module and -Cllvm-args, all stable), so no nightly
# and no RUSTC_BOOTSTRAP (which would also invalidate the build). The first build
# compiles the whole dependency tree instrumented: most of an hour on two cores.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=(-max_total_time=60)
while getopts "t:n:" opt; do
    case $opt in
        t) mode=(-max_total_time="$OPTARG") ;;
        n) mode=(-runs="$OPTARG") ;;
        *) echo "usage: $0 [-t SECONDS | -n RUNS] [TARGET...]" >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(frame_decode channel_frames smux_decode json_payloads sim_requests)
fi

command -v cargo-fuzz >/dev/null || { echo "fuzz: cargo-fuzz is missing: cargo install cargo-fuzz" >&2; exit 1; }
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}/fuzz"
cd fuzz
cargo fuzz build --sanitizer none

status=0
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    log=$(mktemp)
    start=$(date +%s)
    # Seeds are read, new inputs go to corpus/ (not committed).
    if ! cargo fuzz run --sanitizer none "$t" "corpus/$t" "seeds/$t" -- \
        "${mode[@]}" -print_final_stats=1 -artifact_prefix="artifacts/$t/" >"$log" 2>&1; then
        status=1
    fi
    secs=$(( $(date +%s) - start ))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    findings=$(find "artifacts/$t" -type f | wc -l)
    echo "fuzz_$t: ${execs:-0} executions in ${secs} s (${rate:-0} exec/s), ${findings} findings"
    if [ "$findings" -gt 0 ]; then
        find "artifacts/$t" -type f -printf "  finding: fuzz/%p (copy it to fuzz/regressions/$t/ once fixed)\n"
        status=1
    fi
    if [ -z "$execs" ]; then
        tail -20 "$log" >&2
        status=1
    fi
    rm -f "$log"
done
exit $status
