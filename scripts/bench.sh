#!/usr/bin/env bash
# Benchmarks (not tests). One run prints every figure of the performance table (issue 13),
# each as `name: value unit (target: …, ratio x)` where the ratio is figure/target for
# "at most" targets (<= 1.00x meets it) and reference/figure for "times faster" ones; the
# machine, its load and the commit head the report. Everything runs on this machine: the
# simulator shares the CPUs with ec2ssh, so the listing figures give ec2ssh's own CPU time
# apart from the simulator's. Timings are medians of REPS runs.
#
#   filter            per keystroke, typing and deleting "web prod 42", 10k and 100k rows
#   first frame       picker, warm cache of 5,000 rows, from the exec to the frame drawn
#   list (sim)        `list --json` of 5,000 in 3 regions vs boto3 paging the same APIs;
#                     `list -q` of 100,000 in 3 regions (wall, ec2ssh CPU, simulator CPU)
#   memory            `list -q` of 10,000 (peak RSS); the picker holding 10,000 (RSS)
#   throttling        `list -q` of 10,000 with 20% of calls throttled: ec2ssh's retry
#                     configuration, the SDK's adaptive mode, and the SDK's default
#   binary            size as `cargo install --path .` builds it
#
# ONLY=list,memory (any of filter, list, memory, throttling, big, binary) runs only those
# sections (the others print nothing).
#
# Needs scripts/test-deps.sh (tmux, the moto/boto3 venv). MOTO=1 adds `list` against moto.
# Writes the report to $CARGO_TARGET_DIR/bench-report.txt (target/ by default).
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=${REPS:-5}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
report=$CARGO_TARGET_DIR/bench-report.txt
cargo build --release --quiet --bin ec2ssh
# Whether section $1 runs (ONLY unset: every one).
section() { [ -z "${ONLY:-}" ] || [[ ",$ONLY," == *",$1,"* ]]; }
if section filter; then cargo bench --quiet --bench filter --no-run 2>/dev/null; fi
bin=$CARGO_TARGET_DIR/release/ec2ssh
work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    tmux -S "$work/tmux.sock" kill-server 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# cargo (for the filter bench) must still find its toolchain once HOME moves.
export RUSTUP_HOME=${RUSTUP_HOME:-$HOME/.rustup} CARGO_HOME=${CARGO_HOME:-$HOME/.cargo}
export HOME=$work XDG_CACHE_HOME=$work/cache XDG_CONFIG_HOME=$work/config
export AWS_EC2_METADATA_DISABLED=true AWS_ACCESS_KEY_ID=AKIDBENCH AWS_SECRET_ACCESS_KEY=bench
export AWS_CONFIG_FILE=$work/none AWS_SHARED_CREDENTIALS_FILE=$work/none
unset AWS_PROFILE AWS_REGION AWS_DEFAULT_REGION AWS_ENDPOINT_URL AWS_MAX_ATTEMPTS AWS_RETRY_MODE || true

median() { sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }
now_ms() { date +%s%3N; }
# CPU time (user+system) a process has used so far, in ms.
cpu_ms() { awk -v hz="$(getconf CLK_TCK)" '{print int(($14+$15)*1000/hz)}' "/proc/$1/stat"; }

# Runs a command; prints "wall_ms cpu_ms peak_rss_kb" (CPU and peak RSS of the command
# and its children only).
measure() {
    python3 - "$@" <<'PY'
import resource, subprocess, sys, time
t = time.monotonic()
subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
wall = (time.monotonic() - t) * 1000
r = resource.getrusage(resource.RUSAGE_CHILDREN)
print(f"{wall:.0f} {(r.ru_utime + r.ru_stime) * 1000:.0f} {r.ru_maxrss}")
PY
}

# Starts `ec2ssh sim ARGS`; sets ep, regions, listable and sim_pid.
start_sim() {
    "$bin" sim --credentials-from-env "$@" > "$work/sim.json" 2>/dev/null &
    sim_pid=$!
    pids+=("$sim_pid")
    # The summary (one line of JSON) comes once every instance is generated: that takes
    # a while on a busy machine, so wait on the process itself, up to SIM_WAIT seconds.
    local deadline=$((SECONDS + ${SIM_WAIT:-300}))
    until grep -q '}' "$work/sim.json" 2>/dev/null; do
        if ! kill -0 "$sim_pid" 2>/dev/null; then
            echo "error: the simulator (sim $*) exited before printing its summary" >&2
            exit 1
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "error: the simulator (sim $*) printed no summary in ${SIM_WAIT:-300} s (fix: a quieter machine, or SIM_WAIT=seconds)" >&2
            exit 1
        fi
        sleep 0.1
    done
    read -r ep regions listable < <(python3 -c "import json; d=json.load(open('$work/sim.json')); print(d['endpoint'], ','.join(d['regions']), d['instances'])")
}
stop_sim() { kill "$sim_pid" 2>/dev/null || true; wait "$sim_pid" 2>/dev/null || true; }

# Instances `ec2ssh list -q` printed with the given extra environment.
listed() { env "$@" AWS_ENDPOINT_URL="$ep" "$bin" --no-cache --region "$regions" list -q 2>/dev/null | wc -l; }

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
echo "machine: $(uname -sr), $(nproc) CPUs ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)), $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo) RAM"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine slows every figure; ratios within one run still compare)"
echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (uncommitted changes)'), REPS=$REPS"

if section filter; then
# --- filter latency (benches/filter.rs)
cargo bench --quiet --bench filter 2>/dev/null
fi

if section list; then
# --- 5,000 instances: list vs boto3, then the first frame from the cache that list wrote
start_sim --generate 5000
ours=$(for _ in $(seq "$REPS"); do measure env AWS_ENDPOINT_URL="$ep" "$bin" --no-cache --region "$regions" list --json; done | awk '{print $1}' | median)
ref=$(for _ in $(seq "$REPS"); do EP=$ep measure .venv/bin/python -c "$REFERENCE" "$regions"; done | awk '{print $1}' | median)
echo "list_json_5000_sim: $ours ms (vs reference boto3 paging the same APIs: $ref ms, ratio $(ratio "$ref" "$ours")x faster; target: >= 10x)"

AWS_ENDPOINT_URL=$ep "$bin" --region "$regions" list -q > /dev/null
frames=()
wholes=()
for k in $(seq "$REPS"); do
    rm -f "$work/frame" "$work/t0"
    # bash's clock just before the exec, then the frames' own timestamps: the first frame
    # (the head of the cache), then the whole cache decoded, indexed and drawn.
    tmux -S "$work/tmux.sock" -f /dev/null new-session -d -s "f$k" -x 160 -y 50 \
        "bash -c 'echo \$EPOCHREALTIME > $work/t0; AWS_ENDPOINT_URL=$ep exec $bin --region $regions pick --exit-after-first-frame 2> $work/frame'"
    for _ in $(seq 200); do grep -q 'whole cache at' "$work/frame" 2>/dev/null && break; sleep 0.05; done
    read -r f w < <(python3 -c "
t0 = float(open('$work/t0').read())
at = {l.rsplit(' at ', 1)[0]: float(l.split()[-1]) for l in open('$work/frame') if ' at ' in l}
print(f\"{(at['first frame'] - t0) * 1000:.1f} {(at['whole cache'] - t0) * 1000:.1f}\")")
    frames+=("$f")
    wholes+=("$w")
done
ff=$(printf '%s\n' "${frames[@]}" | median)
whole=$(printf '%s\n' "${wholes[@]}" | median)
echo "first_frame_warm_cache_5000: $ff ms from the exec (runs: ${frames[*]}) (target: <= 20 ms, ratio $(ratio "$ff" 20)x)"
echo "whole_cache_on_screen_5000: $whole ms from the exec, every cached row decoded, indexed and drawn, before the first key is read (runs: ${wholes[*]})"
stop_sim
fi

if section memory; then
# --- 10,000 instances: memory of list and of the picker
start_sim --generate 10000
read -r _ _ rss < <(measure env AWS_ENDPOINT_URL="$ep" "$bin" --region "$regions" list -q)
echo "list_q_${listable}_peak_rss: $((rss / 1024)) MB (target: <= 40 MB, ratio $(ratio "$rss" $((40 * 1024)))x)"
tmux -S "$work/tmux.sock" -f /dev/null new-session -d -s rss -x 160 -y 50 \
    "AWS_ENDPOINT_URL=$ep exec $bin --region $regions pick --ping-refresh off"
for _ in $(seq 600); do tmux -S "$work/tmux.sock" capture-pane -p -t rss | grep -q 'updated' && break; sleep 0.1; done
picker=$(tmux -S "$work/tmux.sock" display -p -t rss '#{pane_pid}')
prss=$(awk '/VmRSS/ {print $2}' "/proc/$picker/status")
echo "picker_${listable}_rows_rss: $((prss / 1024)) MB after a refresh (target: <= 40 MB, ratio $(ratio "$prss" $((40 * 1024)))x)"
tmux -S "$work/tmux.sock" send-keys -t rss C-c
stop_sim
fi

if section throttling; then
# --- throttling: 10,000 instances, 20% of calls answered with throttling errors
start_sim --generate 10000 --throttle 0.2
for mode in "ours (standard, 10 attempts, 4 s ceiling)|" \
            "adaptive, 10 attempts|AWS_RETRY_MODE=adaptive AWS_MAX_ATTEMPTS=10" \
            "the SDK's default (standard, 3 attempts)|AWS_RETRY_MODE=standard"; do
    label=${mode%%|*}
    vars=${mode#*|}
    t0=$(now_ms)
    # shellcheck disable=SC2086
    got=$(listed $vars)
    echo "list_${listable}_throttled_20pct: $(( $(now_ms) - t0 )) ms, $got of $listable instances, retries: $label"
done
stop_sim
fi

if section big; then
# --- 100,000 instances in 3 regions
start_sim --generate 100000
walls=()
for _ in $(seq 3); do
    before=$(cpu_ms "$sim_pid")
    read -r wall cpu _ < <(measure env AWS_ENDPOINT_URL="$ep" "$bin" --no-cache --region "$regions" list -q)
    walls+=("$wall")
    echo "$wall $cpu $(( $(cpu_ms "$sim_pid") - before ))" >> "$work/big"
done
read -r wall cpu simcpu < <(sort -n "$work/big" | awk '{v[NR]=$0} END {print v[int((NR+1)/2)]}')
got=$(listed)
echo "list_q_${listable}_sim: $wall ms wall, ec2ssh CPU $cpu ms, simulator CPU $simcpu ms, $got of $listable listed (runs: ${walls[*]} ms) (target: <= 2000 ms, ratio $(ratio "$wall" 2000)x)"
stop_sim
fi

# --- moto, 5,000 instances (EC2 only; moto has no SSM inventory), on request: slow
if [ "${MOTO:-0}" = 1 ]; then
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
    ours=$(for _ in $(seq "$REPS"); do measure env AWS_ENDPOINT_URL="http://127.0.0.1:$port" "$bin" --no-cache --region us-east-1 list --json; done | awk '{print $1}' | median)
    ref=$(for _ in $(seq "$REPS"); do EP=http://127.0.0.1:$port measure .venv/bin/python -c "$REFERENCE" us-east-1; done | awk '{print $1}' | median)
    echo "list_json_5000_moto: $ours ms (vs reference boto3 paging the same APIs: $ref ms, ratio $(ratio "$ref" "$ours")x faster)"
fi

if section binary; then
# --- the binary as installed
cargo install --quiet --locked --offline --path . --root "$work/install" 2>/dev/null
size=$(stat -c %s "$work/install/bin/ec2ssh")
echo "binary_installed: $(python3 -c "print(f'{$size/1e6:.1f}')") MB (target: <= 25 MB, ratio $(ratio "$size" 25000000)x)"
fi

echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$report"
echo "report: $report"
