#!/usr/bin/env bash
# Benchmark of `ec2ssh scp` pushing to many hosts (not a test). In one run, against
# HOSTS (default 8) private sshds on loopback, each a simulated instance behind the
# built-in simulator's Session Manager gateway with its own key store and home:
#   - `ec2ssh scp -t tag:Role=bench FILE :` of a SIZE_MB (default 64) MiB file to all
#     of them (a one-time key pushed per host, scp through `ec2ssh proxy`, up to
#     PARALLEL (default HOSTS) hosts at once), total wall time;
#   - the same file with HOSTS sequential plain `scp`s over direct loopback ssh;
#   - their ratio. Best of ROUNDS (default 2) each, alternating.
# Every copy is checked by SHA-256 on every host. Writes target/bench-push-report.txt.
# Needs scripts/test-deps.sh to have run. EC2SSH_BIN=path skips the release build.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MB=${SIZE_MB:-64}
HOSTS=${HOSTS:-8}
ROUNDS=${ROUNDS:-2}
PARALLEL=${PARALLEL:-$HOSTS}
report=target/bench-push-report.txt
source scripts/bench-rig.sh
bench_rig

now_ns() { date +%s%N; }

ssh-keygen -q -t ed25519 -N '' -f "$work/hostkey"
ssh-keygen -q -t ed25519 -N '' -f "$work/id"
echo 'default_region = "us-east-1"' >"$work/fleet.toml"
ports=() homes=()
for n in $(seq "$HOSTS"); do
    h=$work/host-$n
    mkdir -p "$h/keys/ec2-user" "$h/home"
    chown ec2-user "$h/home"
    cp "$work/id.pub" "$h/keys/ec2-user/direct.pub"   # for the plain scp baseline
    start_sshd "$h" "$h/keys" "-d $h/home"
    ports+=("$port")
    homes+=("$h/home")
    cat >>"$work/fleet.toml" <<EOF

[[instance]]
id = "i-0be0c0000000000$(printf '%02x' "$n")"
name = "bench-$n"
state = "running"
ping = "Online"
platform_type = "Linux"
platform_name = "Amazon Linux"
agent_version = "3.3.1611.0"
target = "127.0.0.1:$port"
keys_dir = "$h/keys"
tags = { Role = "bench" }
EOF
done
"$EC2SSH_BIN" sim --credentials-from-env --fleet "$work/fleet.toml" >"$work/sim.json" &
pids+=($!)
for _ in $(seq 100); do [ -s "$work/sim.json" ] && break; sleep 0.05; done
export AWS_ENDPOINT_URL
AWS_ENDPOINT_URL=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["endpoint"])' "$work/sim.json")

head -c $((SIZE_MB << 20)) /dev/urandom >"$work/payload"
sum=$(sha256sum <"$work/payload" | cut -d' ' -f1)
verify() {
    for home in "${homes[@]}"; do
        [ "$(sha256sum <"$home/payload" | cut -d' ' -f1)" = "$sum" ] || { echo "bench: $home/payload differs" >&2; exit 1; }
        rm -f "$home/payload"
    done
}

common=(-F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=no -o "UserKnownHostsFile=$work/known_hosts"
        -o IdentitiesOnly=yes -o LogLevel=ERROR -i "$work/id")
sequential_once() {
    for n in $(seq "$HOSTS"); do touch "$work/host-$n/keys/ec2-user/direct.pub"; done
    local t0 t1
    t0=$(now_ns)
    for port in "${ports[@]}"; do
        scp "${common[@]}" -P "$port" "$work/payload" ec2-user@127.0.0.1: >/dev/null
    done
    t1=$(now_ns)
    echo $(( (t1 - t0) / 1000000 ))
}
ec2ssh_once() {
    local t0 t1
    t0=$(now_ns)
    "$EC2SSH_BIN" --region us-east-1 scp --parallel "$PARALLEL" -t tag:Role=bench "$work/payload" : >"$work/scp.out"
    t1=$(now_ns)
    grep -q "$HOSTS hosts: $HOSTS ok, 0 failed" "$work/scp.out" || { cat "$work/scp.out" >&2; exit 1; }
    echo $(( (t1 - t0) / 1000000 ))
}
seq_times=() ec2_times=()
for _ in $(seq "$ROUNDS"); do
    seq_times+=("$(sequential_once)"); verify
    ec2_times+=("$(ec2ssh_once)"); verify
done
best() { printf '%s\n' "$@" | sort -n | head -1; }
seq_ms=$(best "${seq_times[@]}")
ec2_ms=$(best "${ec2_times[@]}")
ratio=$(python3 -c "print(f'{$seq_ms / $ec2_ms:.2f}')")
{
    echo "ec2ssh scp push benchmark, $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, $EC2SSH_BIN"
    echo "push ${SIZE_MB} MiB to $HOSTS hosts: ec2ssh scp (one-time key per host, tunnel, $PARALLEL at once) $ec2_ms ms vs $HOSTS sequential plain scp over loopback ssh $seq_ms ms (best of $ROUNDS each)"
    echo "speed-up of ec2ssh scp over the sequential plain scps: ${ratio}x (all tunnels share this machine's $(nproc) cores with sshd and the simulator)"
} | tee "$report"
