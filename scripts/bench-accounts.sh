#!/usr/bin/env bash
# Benchmark (not a test) of listing several accounts at once (issue 14): 3 profiles, each
# its own simulated account of 5,000 instances in 3 regions (15,000 rows, 9 profile ×
# region fetches at once), against the same 15,000 instances in one account listed with
# one profile. Prints `name: value unit (vs reference: value unit, ratio x)`; times are
# medians of REPS runs of `ec2ssh list -q` (no cache), wall clock, on this machine (the
# simulator shares its CPUs).
#
# Needs nothing beyond the build. Writes the report to $CARGO_TARGET_DIR/bench-accounts.txt.
# BIN=path/to/ec2ssh measures that binary instead of building the release one.
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=${REPS:-5}
PER_ACCOUNT=${PER_ACCOUNT:-5000}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
report=$CARGO_TARGET_DIR/bench-accounts.txt
if [ -z "${BIN:-}" ]; then
    cargo build --release --quiet --bin ec2ssh
fi
bin=${BIN:-$CARGO_TARGET_DIR/release/ec2ssh}
work=$(mktemp -d)
sim_pid=
cleanup() {
    [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

export HOME=$work XDG_CACHE_HOME=$work/cache XDG_CONFIG_HOME=$work/config
export AWS_EC2_METADATA_DISABLED=true AWS_ACCESS_KEY_ID=AKIDBENCH AWS_SECRET_ACCESS_KEY=bench
export AWS_CONFIG_FILE=$work/aws-config AWS_SHARED_CREDENTIALS_FILE=$work/aws-credentials
unset AWS_PROFILE AWS_REGION AWS_DEFAULT_REGION AWS_ENDPOINT_URL AWS_MAX_ATTEMPTS AWS_RETRY_MODE || true
: > "$AWS_CONFIG_FILE"
: > "$AWS_SHARED_CREDENTIALS_FILE"

median() { sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }
# Wall ms of one run of the command (its output discarded).
wall_ms() {
    python3 - "$@" <<'PY'
import subprocess, sys, time
t = time.monotonic()
subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(f"{(time.monotonic() - t) * 1000:.0f}")
PY
}

# Starts `ec2ssh sim ARGS`; sets ep, regions, listable and sim_pid.
start_sim() {
    "$bin" sim --credentials-from-env "$@" > "$work/sim.json" 2>/dev/null &
    sim_pid=$!
    for _ in $(seq 600); do [ -s "$work/sim.json" ] && break; sleep 0.1; done
    read -r ep regions listable < <(python3 -c "import json; d=json.load(open('$work/sim.json')); print(d['endpoint'], ','.join(d['regions']), d['instances'])")
}
stop_sim() { kill "$sim_pid" 2>/dev/null || true; wait "$sim_pid" 2>/dev/null || true; sim_pid=; }

total=$((PER_ACCOUNT * 3))
{
echo "machine: $(uname -sr), $(nproc) CPUs, load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (uncommitted changes)'), REPS=$REPS, binary: $bin"

# --- reference: one account, one profile (the environment's keys), the same rows
start_sim --generate "$total"
ref=$(for _ in $(seq "$REPS"); do wall_ms env AWS_ENDPOINT_URL="$ep" "$bin" --no-cache --region "$regions" list -q; done | median)
stop_sim

# --- 3 accounts, a profile each (its key pair in the credentials file)
start_sim --generate "$total" --accounts 3
python3 - "$work/sim.json" "$AWS_CONFIG_FILE" "$AWS_SHARED_CREDENTIALS_FILE" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
with open(sys.argv[2], "w") as config, open(sys.argv[3], "w") as creds:
    for n, a in enumerate(d["accounts"], 1):
        config.write(f"[profile bench{n}]\nregion = us-east-1\n")
        creds.write(f"[bench{n}]\naws_access_key_id = {a['access_key_id']}\naws_secret_access_key = {a['secret_access_key']}\n")
PY
got=$(AWS_ENDPOINT_URL="$ep" "$bin" --no-cache --profile bench1,bench2,bench3 --region "$regions" list -q | wc -l)
ours=$(for _ in $(seq "$REPS"); do wall_ms env AWS_ENDPOINT_URL="$ep" "$bin" --no-cache --profile bench1,bench2,bench3 --region "$regions" list -q; done | median)
stop_sim
echo "list_q_3_profiles_x_3_regions_x_${PER_ACCOUNT}: $ours ms wall, $got of $listable listed (vs reference one profile listing the same $total: $ref ms, ratio $(ratio "$ours" "$ref")x)"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$report"
echo "report: $report"
