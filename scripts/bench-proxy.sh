#!/usr/bin/env bash
# Benchmark of `ec2ssh proxy` (not a test). In one run, against a private sshd on
# loopback and the built-in simulator's Session Manager gateway:
#   - scp throughput of a SIZE_MB (default 256) MiB file, direct vs through the proxy
#     (best of 3 each, alternating) and their ratio (target: proxy >= 50% of direct);
#   - connection set-up: `ssh ... true`, direct vs through the proxy, median of 10
#     (target: <= 50 ms added);
#   - connecting the ec2ssh way: `ec2ssh ssh ID -- true` (one-time key, Instance Connect
#     push, ssh through the proxy) vs plain `ssh true`, median of 10
#     (target: <= 150 ms added);
#   - proxy start-up to first byte: spawning `ec2ssh proxy` until sshd's banner
#     arrives on its stdout, vs a plain TCP connect reading the banner, median of 10;
#   - over a simulated WAN: scp push and pull of WAN_SIZE_MB (default 64) MiB through
#     the proxy against a second simulator with the agent's pacing (its default: at
#     most 1024 bytes per message, then 1 ms) and `latency-ms=20` each way, next to
#     direct loopback scp; median of WAN_REPS (default 3). Pulls are capped by the
#     agent's pacing near 1 MB/s; pushes are not (Amazon's plugin paces its own input
#     the same way, 1 ms per KiB read from stdin, so its pushes are capped there too).
# Writes target/bench-proxy-report.txt. Needs scripts/test-deps.sh to have run.
# EC2SSH_BIN=path skips the release build; ONLY=wan runs the WAN figures alone.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MB=${SIZE_MB:-256}
REPS=${REPS:-10}
WAN_SIZE_MB=${WAN_SIZE_MB:-64}
WAN_REPS=${WAN_REPS:-3}
ONLY=${ONLY:-all}
report=target/bench-proxy-report.txt
source scripts/bench-rig.sh
bench_rig ~ec2-user/bench.bin ~ec2-user/wan.bin

# sshd with an EC2-Instance-Connect-style key source.
ssh-keygen -q -t ed25519 -N '' -f "$work/hostkey"
ssh-keygen -q -t ed25519 -N '' -f "$work/id"
mkdir -p "$work/keys/ec2-user"
cp "$work/id.pub" "$work/keys/ec2-user/bench.pub"
start_sshd "$work" "$work/keys"

id=i-0be0c000000000001
cat >"$work/fleet.toml" <<EOF
default_region = "us-east-1"
[[instance]]
id = "$id"
name = "bench"
state = "running"
ping = "Online"
agent_version = "3.3.1611.0"
target = "127.0.0.1:$port"
EOF
# start_sim NAME ARGS...: a simulator; sets `endpoint`. Not in a $(...) subshell, so its
# pid reaches `pids` and the cleanup.
start_sim() {
    local name=$1; shift
    "$EC2SSH_BIN" sim --credentials-from-env --fleet "$work/fleet.toml" --keys-dir "$work/keys" "$@" >"$work/$name.json" &
    pids+=($!)
    for _ in $(seq 100); do [ -s "$work/$name.json" ] && break; sleep 0.05; done
    endpoint=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["endpoint"])' "$work/$name.json")
}
start_sim sim
export AWS_ENDPOINT_URL=$endpoint
# The agent's pacing is on in both; the WAN one adds 20 ms each way to every frame.
start_sim wan --faults latency-ms=20
wan_endpoint=$endpoint

common=(-F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=no -o "UserKnownHostsFile=$work/known_hosts"
        -o IdentitiesOnly=yes -o LogLevel=ERROR -i "$work/id")
proxy=(-o "ProxyCommand=$EC2SSH_BIN proxy %h %p --region us-east-1")
fresh_key() { touch "$work/keys/ec2-user/bench.pub"; }  # pushed keys are valid 60 s

now_ns() { date +%s%N; }

median() { printf '%s\n' "$@" | sort -g | sed -n "$(( ($# + 1) / 2 ))p"; }
rate() {  # rate MIB T0_NS T1_NS -> MB/s
    python3 -c "print(f'{$1 * 1048576 / 1e6 / (($3 - $2) / 1e9):.2f}')"
}

# Over the WAN: push (local -> instance) and pull (instance -> local), direct and
# through the proxy, alternating.
wan_scp() {  # wan_scp push|pull direct|proxy -> MB/s
    local dir=$1 how=$2 t0 t1 remote local_file args=()
    if [ "$how" = direct ]; then
        remote="ec2-user@127.0.0.1:wan.bin"; args=(-P "$port")
    else
        remote="ec2-user@$id:wan.bin"; args=("${proxy[@]}")
    fi
    fresh_key
    t0=$(now_ns)
    if [ "$dir" = push ]; then
        AWS_ENDPOINT_URL=$wan_endpoint scp "${common[@]}" "${args[@]}" "$work/wan-payload" "$remote" >/dev/null
    else
        local_file="$work/wan-pulled"
        rm -f "$local_file"
        AWS_ENDPOINT_URL=$wan_endpoint scp "${common[@]}" "${args[@]}" "$remote" "$local_file" >/dev/null
    fi
    t1=$(now_ns)
    if [ "$dir" = push ]; then
        cmp -s "$work/wan-payload" ~ec2-user/wan.bin || { echo "bench: the pushed copy differs" >&2; exit 1; }
    else
        cmp -s "$work/wan-payload" "$local_file" || { echo "bench: the pulled copy differs" >&2; exit 1; }
    fi
    rate "$WAN_SIZE_MB" "$t0" "$t1"
}
head -c $((WAN_SIZE_MB << 20)) /dev/urandom >"$work/wan-payload"
wan_report=()
for dir in push pull; do
    direct_wan=() proxy_wan=()
    for _ in $(seq "$WAN_REPS"); do
        direct_wan+=("$(wan_scp "$dir" direct)")
        proxy_wan+=("$(wan_scp "$dir" proxy)")
    done
    d=$(median "${direct_wan[@]}")
    p=$(median "${proxy_wan[@]}")
    r=$(python3 -c "print(f'{$p / $d:.3f}')")
    wan_report+=("scp ${WAN_SIZE_MB} MiB $dir through ec2ssh proxy, agent pacing, latency 20 ms each way (median of $WAN_REPS): $p MB/s (vs direct loopback scp: $d MB/s, ratio ${r}x)")
done
# The reference plugin cannot go faster than its own pacing of stdin (1024 bytes,
# then 1 ms): a model figure, not a measurement.
wan_report+=("model: Amazon's session-manager-plugin pushes at most 1024 bytes per ms of its own pacing: <= 1.02 MB/s; the agent's pacing caps pulls the same way")
rm -f ~ec2-user/wan.bin
if [ "$ONLY" = wan ]; then
    {
        echo "ec2ssh proxy benchmark (WAN only), $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, $EC2SSH_BIN"
        printf '%s\n' "${wan_report[@]}"
    } | tee "$report"
    exit 0
fi

head -c $((SIZE_MB << 20)) /dev/urandom >"$work/payload"

# Direct and proxied runs alternate, so drift in the machine's load hits both alike.
# scp: best of 3 each, in MB/s.
scp_once() {  # scp_once DEST ARGS... -> MB/s
    local dest=$1; shift
    fresh_key
    local t0 t1
    t0=$(now_ns)
    scp "${common[@]}" "$@" "$work/payload" "ec2-user@$dest:bench.bin" >/dev/null
    t1=$(now_ns)
    python3 -c "print(f'{$SIZE_MB * 1048576 / 1e6 / (($t1 - $t0) / 1e9):.1f}')"
}
direct_rates=() proxy_rates=()
for _ in 1 2 3; do
    direct_rates+=("$(scp_once 127.0.0.1 -P "$port")")
    proxy_rates+=("$(scp_once "$id" "${proxy[@]}")")
    cmp -s "$work/payload" ~ec2-user/bench.bin || { echo "bench: the proxied copy differs" >&2; exit 1; }
done
best() { printf '%s\n' "$@" | sort -g | tail -1; }
direct_rate=$(best "${direct_rates[@]}")
proxy_rate=$(best "${proxy_rates[@]}")

# ssh set-up: `ssh ... true`, REPS each, alternating; medians in ms.
ssh_once() {
    fresh_key
    local t0 t1
    t0=$(now_ns)
    ssh "${common[@]}" "$@" true
    t1=$(now_ns)
    echo $(( (t1 - t0) / 1000000 ))
}
direct_times=() proxy_times=()
for _ in $(seq "$REPS"); do
    direct_times+=("$(ssh_once -p "$port" ec2-user@127.0.0.1)")
    proxy_times+=("$(ssh_once "${proxy[@]}" "ec2-user@$id")")
done
direct_ssh=$(median "${direct_times[@]}")
proxy_ssh=$(median "${proxy_times[@]}")

# The whole ec2ssh connection (what Enter in the picker does), alternating with plain ssh.
ec2ssh_once() {
    local t0 t1
    t0=$(now_ns)
    "$EC2SSH_BIN" --region us-east-1 ssh "$id" -- -o BatchMode=yes -o LogLevel=ERROR true
    t1=$(now_ns)
    echo $(( (t1 - t0) / 1000000 ))
}
plain_times=() connect_times=()
for _ in $(seq "$REPS"); do
    plain_times+=("$(ssh_once -p "$port" ec2-user@127.0.0.1)")
    connect_times+=("$(ec2ssh_once)")
done
plain_ssh=$(median "${plain_times[@]}")
connect_ssh=$(median "${connect_times[@]}")

first_byte=$(python3 - "$EC2SSH_BIN" "$id" "$port" "$REPS" <<'PY'
import socket, statistics, subprocess, sys, time
binary, target, port, reps = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
def proxied():
    t0 = time.perf_counter()
    p = subprocess.Popen([binary, "proxy", target, "22", "--region", "us-east-1"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert p.stdout.read(8) == b"SSH-2.0-"
    t1 = time.perf_counter()
    p.stdin.close(); p.wait()
    return (t1 - t0) * 1e3
def direct():
    t0 = time.perf_counter()
    s = socket.create_connection(("127.0.0.1", port))
    assert s.recv(8) == b"SSH-2.0-"
    t1 = time.perf_counter()
    s.close()
    return (t1 - t0) * 1e3
print(f"{statistics.median(proxied() for _ in range(reps)):.1f} {statistics.median(direct() for _ in range(reps)):.1f}")
PY
)
read -r proxy_first direct_first <<<"$first_byte"

ratio=$(python3 -c "print(f'{$proxy_rate / $direct_rate:.2f}')")
{
    echo "ec2ssh proxy benchmark, $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, $EC2SSH_BIN"
    echo "scp ${SIZE_MB} MiB through ec2ssh proxy: $proxy_rate MB/s (vs direct loopback scp: $direct_rate MB/s, ratio ${ratio}x; target >= 0.50x)"
    echo "ssh set-up (ssh true, median of $REPS): $proxy_ssh ms through the proxy vs $direct_ssh ms direct, $((proxy_ssh - direct_ssh)) ms added (target <= 50 ms)"
    echo "ec2ssh ssh (key, push, tunnel, ssh true; median of $REPS): $connect_ssh ms vs plain ssh $plain_ssh ms, $((connect_ssh - plain_ssh)) ms added (target <= 150 ms)"
    echo "proxy start to first byte (median of $REPS): $proxy_first ms (vs TCP connect to the banner: $direct_first ms)"
    printf '%s\n' "${wan_report[@]}"
} | tee "$report"
