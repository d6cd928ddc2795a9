# Sourced by the tunnel benchmarks (bench-eice.sh, bench-proxy.sh, bench-push.sh): the
# release binary, a private work dir cleaned up on exit, a hermetic AWS environment, and
# loopback sshds with an EC2-Instance-Connect-style key source. Not run on its own.
#
#   bench_rig FILE...      sets EC2SSH_BIN, work, pids; FILEs are removed on exit too
#   free_port              a free loopback port
#   start_sshd DIR KEYS [SFTP_ARGS]
#                          an sshd on loopback using DIR for its files and KEYS as the
#                          key source (KEYS/USER/*.pub); sets `port`; needs $work/hostkey

bench_rig() {
    if [ -z "${EC2SSH_BIN:-}" ]; then
        cargo build --release --quiet
        EC2SSH_BIN=$PWD/target/release/ec2ssh
    fi
    AKC=/usr/local/libexec/ec2ssh-test/authorized-keys
    if [ ! -x "$AKC" ] || [ ! -x /usr/sbin/sshd ]; then echo "run scripts/test-deps.sh first" >&2; exit 1; fi
    work=$(mktemp -d)
    chmod 711 "$work"
    pids=()
    rig_leftovers=("$@")
    trap rig_cleanup EXIT
    export HOME=$work XDG_CACHE_HOME=$work/cache XDG_CONFIG_HOME=$work/config
    export XDG_RUNTIME_DIR=$work/run XDG_DATA_HOME=$work/data XDG_STATE_HOME=$work/state
    export AWS_EC2_METADATA_DISABLED=true AWS_ACCESS_KEY_ID=AKIDBENCH AWS_SECRET_ACCESS_KEY=bench
    export AWS_CONFIG_FILE=$work/none AWS_SHARED_CREDENTIALS_FILE=$work/none
    unset AWS_PROFILE AWS_REGION AWS_DEFAULT_REGION AWS_ENDPOINT_URL_EC2_INSTANCE_CONNECT || true
    mkdir -p /run/sshd
}

rig_cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$work"
    rm -f "${rig_leftovers[@]}"
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start_sshd() {
    local dir=$1 keys=$2 sftp=${3:-}
    port=$(free_port)
    cat >"$dir/sshd_config" <<EOF
ListenAddress 127.0.0.1
Port $port
HostKey $work/hostkey
PidFile none
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
AuthorizedKeysFile none
AuthorizedKeysCommand $AKC $keys %u
AuthorizedKeysCommandUser root
StrictModes no
Subsystem sftp internal-sftp $sftp
EOF
    /usr/sbin/sshd -f "$dir/sshd_config" -D -e 2>"$dir/sshd.log" &
    pids+=($!)
}
