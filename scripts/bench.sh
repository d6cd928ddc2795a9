#!/usr/bin/env bash
# Benchmarks (not tests). Builds release, then measures, in one run:
#   - `ec2ssh list` of 5,000 instances from the simulator and from moto, against a
#     boto3 reference client paging the same server;
#   - the picker's first frame with a warm cache (in tmux, so it has a real tty);
#   - filter latency per keystroke on 10k and 100k rows (benches/filter.rs).
# Prints `name: value unit (vs reference: value unit, ratio x)` lines and writes them
# to target/bench-report.txt. Needs scripts/test-deps.sh to have run.
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=${REPS:-5}
report=target/bench-report.txt
cargo build --release --quiet
bin=$PWD/target/release/ec2ssh
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; tmux -S "$work/tmux.sock" kill-server 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

export HOME=$work XDG_CACHE_HOME=$work/cache XDG_CONFIG_HOME=$work/config
export AWS_EC2_METADATA_DISABLED=true AWS_ACCESS_KEY_ID=AKIDBENCH AWS_SECRET_ACCESS_KEY=bench
export AWS_CONFIG_FILE=$work/none AWS_SHARED_CREDENTIALS_FILE=$work/none
unset AWS_PROFILE AWS_REGION AWS_DEFAULT_REGION AWS_ENDPOINT_URL || true

# median of REPS runs of a command, in ms
median_ms() {
    local times=()
    for _ in $(seq "$REPS"); do
        local t0 t1
        t0=$(date +%s%N); "$@" >/dev/null 2>&1; t1=$(date +%s%N)
        times+=($(( (t1 - t0) / 1000000 )))
    done
    printf '%s\n' "${times[@]}" | sort -n | sed -n "$(( (REPS + 1) / 2 ))p"
}

ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }

REFERENCE=$(cat <<'PY'
import os, sys, boto3
ep, regions = os.environ["EP"], sys.argv[1].split(",")
n = 0
for r in regions:
    ec2 = boto3.client("ec2", endpoint_url=ep, region_name=r)
    for page in ec2.get_paginator("describe_instances").paginate(PaginationConfig={"PageSize": 1000}):
        n += sum(len(res["Instances"]) for res in page["Reservations"])
    ssm = boto3.client("ssm", endpoint_url=ep, region_name=r)
    try:
        for page in ssm.get_paginator("describe_instance_information").paginate(PaginationConfig={"PageSize": 50}):
            n += len(page["InstanceInformationList"])
    except Exception:
        pass
print(n)
PY
)

{
# --- simulator, 5,000 instances
"$bin" sim --credentials-from-env --generate 5000 > "$work/sim.json" &
pids+=($!)
for _ in $(seq 100); do [ -s "$work/sim.json" ] && break; sleep 0.1; done
ep=$(python3 -c "import json;print(json.load(open('$work/sim.json'))['endpoint'])" )
regions=$(python3 -c "import json;print(','.join(json.load(open('$work/sim.json'))['regions']))")
ours=$(AWS_ENDPOINT_URL=$ep median_ms "$bin" --no-cache --region "$regions" list --json)
ref=$(EP=$ep median_ms .venv/bin/python -c "$REFERENCE" "$regions")
echo "list_5000_sim: $ours ms (vs reference boto3 paging the same APIs: $ref ms, ratio $(ratio "$ours" "$ref")x)"

# --- first frame with a warm cache (5,000 rows)
AWS_ENDPOINT_URL=$ep "$bin" --region "$regions" list -q > /dev/null
frames=()
for k in $(seq "$REPS"); do
    rm -f "$work/frame"
    tmux -S "$work/tmux.sock" -f /dev/null new-session -d -s "f$k" -x 160 -y 50 \
        "AWS_ENDPOINT_URL=$ep $bin --region $regions pick --exit-after-first-frame 2> $work/frame"
    for _ in $(seq 200); do grep -q 'first frame' "$work/frame" 2>/dev/null && break; sleep 0.05; done
    frames+=("$(sed -n 's/first frame: \([0-9.]*\) ms/\1/p' "$work/frame")")
done
ff=$(printf '%s\n' "${frames[@]}" | sort -n | sed -n "$(( (REPS + 1) / 2 ))p")
echo "first_frame_warm_cache_5000: $ff ms, from process start (target: 30 ms, ratio $(ratio "$ff" 30)x)"

# --- moto, 5,000 instances (EC2 only; moto has no SSM inventory)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
.venv/bin/moto_server -H 127.0.0.1 -p "$port" >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 100); do python3 -c "import socket; socket.create_connection(('127.0.0.1',$port))" 2>/dev/null && break; sleep 0.1; done
EP=http://127.0.0.1:$port .venv/bin/python - <<'PY'
import os, boto3
ec2 = boto3.client("ec2", endpoint_url=os.environ["EP"], region_name="us-east-1")
for k in range(5):
    ec2.run_instances(ImageId="ami-12c6146b", MinCount=1000, MaxCount=1000, InstanceType="t3.micro")
PY
ours=$(AWS_ENDPOINT_URL=http://127.0.0.1:$port median_ms "$bin" --no-cache --region us-east-1 list --json)
ref=$(EP=http://127.0.0.1:$port median_ms .venv/bin/python -c "$REFERENCE" us-east-1)
echo "list_5000_moto: $ours ms (vs reference boto3 paging the same APIs: $ref ms, ratio $(ratio "$ours" "$ref")x)"

# --- filter latency
cargo bench --quiet --bench filter 2>/dev/null
} | tee "$report"
echo "report: $report"
