#!/usr/bin/env bash
# Benchmark of the EC2 Instance Connect Endpoint path (not a test). In one run, against
# a private sshd on loopback and the built-in simulator's openTunnel websocket, for an
# instance Session Manager does not manage:
#   - scp throughput of a SIZE_MB (default 64) MiB file, direct vs through
#     `ec2ssh proxy --via eice` (best of 3 each, alternating), and their ratio;
#   - connection set-up: `ssh ... true`, direct vs through the tunnel, median of REPS (10);
#   - `ec2ssh ssh ID -- true` (one-time key, push, tunnel, ssh) vs plain ssh, median of REPS.
# Writes target/bench-eice-report.txt (`name: value unit (vs reference: value unit, ratio x)`).
# Needs scripts/test-deps.sh to have run. EC2SSH_BIN=path skips the release build.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MB=${SIZE_MB:-64}
REPS=${REPS:-10}
report=target/bench-eice-report.txt
source scripts/bench-rig.sh
bench_rig ~ec2-user/bench-eice.bin

ssh-keygen -q -t ed25519 -N '' -f "$work/hostkey"
ssh-keygen -q -t ed25519 -N '' -f "$work/id"
mkdir -p "$work/keys/ec2-user"
cp "$work/id.pub" "$work/keys/ec2-user/bench.pub"
start_sshd "$work" "$work/keys"

id=i-0be0c00000000e1ce
eice=eice-0be0c00000000e1ce
cat >"$work/fleet.toml" <<EOF
default_region = "us-east-1"
[[instance]]
id = "$id"
name = "bench-eice"
state = "running"
private_ip = "10.9.0.10"
vpc_id = "vpc-bench"
subnet_id = "subnet-bench"
security_groups = ["sg-app"]
target = "127.0.0.1:$port"
[[instance_connect_endpoint]]
id = "$eice"
vpc_id = "vpc-bench"
subnet_id = "subnet-bench"
security_groups = ["sg-eice"]
[[security_group]]
id = "sg-eice"
[[security_group]]
id = "sg-app"
ingress = ["tcp:22:sg-eice"]
EOF
"$EC2SSH_BIN" sim --credentials-from-env --fleet "$work/fleet.toml" --keys-dir "$work/keys" >"$work/sim.json" &
pids+=($!)
for _ in $(seq 100); do [ -s "$work/sim.json" ] && break; sleep 0.05; done
export AWS_ENDPOINT_URL
AWS_ENDPOINT_URL=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["endpoint"])' "$work/sim.json")
dns=$("$EC2SSH_BIN" --region us-east-1 list --json | python3 -c 'import json,sys; print([i for i in json.load(sys.stdin)["instances"] if i["id"]==sys.argv[1]][0]["eice"]["dns_name"])' "$id")

common=(-F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=no -o "UserKnownHostsFile=$work/known_hosts"
        -o IdentitiesOnly=yes -o LogLevel=ERROR -i "$work/id")
tunnel=(-o "ProxyCommand=$EC2SSH_BIN proxy %h %p --region us-east-1 --via eice --eice-id $eice --eice-host $dns --ip 10.9.0.10")
fresh_key() { touch "$work/keys/ec2-user/bench.pub"; }
now_ns() { date +%s%N; }
median() { printf '%s\n' "$@" | sort -g | sed -n "$(( ($# + 1) / 2 ))p"; }
best() { printf '%s\n' "$@" | sort -g | tail -1; }

head -c $((SIZE_MB << 20)) /dev/urandom >"$work/payload"
scp_once() {  # scp_once DEST ARGS... -> MB/s
    local dest=$1; shift
    fresh_key
    local t0 t1
    t0=$(now_ns)
    scp "${common[@]}" "$@" "$work/payload" "ec2-user@$dest:bench-eice.bin" >/dev/null
    t1=$(now_ns)
    python3 -c "print(f'{$SIZE_MB * 1048576 / 1e6 / (($t1 - $t0) / 1e9):.1f}')"
}
direct_rates=() eice_rates=()
for _ in 1 2 3; do
    direct_rates+=("$(scp_once 127.0.0.1 -P "$port")")
    eice_rates+=("$(scp_once "$id" "${tunnel[@]}")")
    cmp -s "$work/payload" ~ec2-user/bench-eice.bin || { echo "bench: the tunnelled copy differs" >&2; exit 1; }
done
direct_rate=$(best "${direct_rates[@]}")
eice_rate=$(best "${eice_rates[@]}")

ssh_once() {
    fresh_key
    local t0 t1
    t0=$(now_ns)
    ssh "${common[@]}" "$@" true
    t1=$(now_ns)
    echo $(( (t1 - t0) / 1000000 ))
}
direct_times=() eice_times=()
for _ in $(seq "$REPS"); do
    direct_times+=("$(ssh_once -p "$port" ec2-user@127.0.0.1)")
    eice_times+=("$(ssh_once "${tunnel[@]}" "ec2-user@$id")")
done
direct_ssh=$(median "${direct_times[@]}")
eice_ssh=$(median "${eice_times[@]}")

ec2ssh_once() {
    local t0 t1
    t0=$(now_ns)
    "$EC2SSH_BIN" --region us-east-1 --no-cache ssh "$id" -- -o BatchMode=yes -o LogLevel=ERROR true
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

ratio=$(python3 -c "print(f'{$eice_rate / $direct_rate:.2f}')")
{
    echo "ec2ssh EICE benchmark, $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, $EC2SSH_BIN"
    echo "scp ${SIZE_MB} MiB through an EICE tunnel: $eice_rate MB/s (vs reference direct loopback scp: $direct_rate MB/s, ratio ${ratio}x)"
    echo "ssh set-up through an EICE tunnel (ssh true, median of $REPS): $eice_ssh ms (vs reference direct: $direct_ssh ms, ratio $(python3 -c "print(f'{$eice_ssh / max($direct_ssh, 1):.2f}')")x)"
    echo "ec2ssh ssh over EICE (list, key, push, tunnel, ssh true; median of $REPS): $connect_ssh ms (vs reference plain ssh: $plain_ssh ms, ratio $(python3 -c "print(f'{$connect_ssh / max($plain_ssh, 1):.2f}')")x)"
} | tee "$report"
