#!/usr/bin/env bash
# Installs what the test suite needs: tmux, OpenSSH and tinyproxy (Debian packages)
# and a project-local Python venv with moto's server. Idempotent; quick when all is there.
set -euo pipefail
cd "$(dirname "$0")/.."

MOTO_VERSION="5.2.5"

need_apt=()
command -v tmux >/dev/null 2>&1 || need_apt+=(tmux)
command -v ssh >/dev/null 2>&1 || need_apt+=(openssh-client)
[ -x /usr/sbin/sshd ] || need_apt+=(openssh-server)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3 python3-venv)
# The HTTP proxy of the proxy tests; tinyproxy-bin is the program without the system service.
command -v tinyproxy >/dev/null 2>&1 || need_apt+=(tinyproxy-bin)
if [ ${#need_apt[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "test-deps: need root to install: ${need_apt[*]}" >&2
        exit 1
    fi
    echo "test-deps: installing ${need_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# EC2 Instance Connect on the "instances" is emulated by an AuthorizedKeysCommand.
# sshd only runs it if it and every directory above it are root-owned and not
# group/world-writable, so it is installed outside the checkout.
AKC=/usr/local/libexec/ec2ssh-test/authorized-keys
if ! cmp -s scripts/authorized-keys.sh "$AKC" 2>/dev/null; then
    if [ "$(id -u)" != 0 ]; then
        echo "test-deps: need root to install $AKC" >&2
        exit 1
    fi
    install -d -o root -g root -m 0755 "$(dirname "$AKC")"
    install -o root -g root -m 0755 scripts/authorized-keys.sh "$AKC"
fi
# The login user of the simulated instances. sshd (without PAM) refuses locked
# accounts, so it gets the "no password" marker rather than useradd's locked one.
if ! id ec2-user >/dev/null 2>&1; then
    if [ "$(id -u)" != 0 ]; then
        echo "test-deps: need root to create the user ec2-user" >&2
        exit 1
    fi
    useradd -m -s /bin/bash ec2-user
fi
if [ "$(id -u)" = 0 ] && getent shadow ec2-user | cut -d: -f2 | grep -q '^!'; then
    usermod -p '*' ec2-user
fi
mkdir -p /run/sshd 2>/dev/null || true

if ! .venv/bin/python -c "import moto, sys; sys.exit(moto.__version__ != '$MOTO_VERSION')" 2>/dev/null; then
    echo "test-deps: creating .venv with moto[server]==$MOTO_VERSION"
    python3 -m venv .venv
    .venv/bin/pip install -q --disable-pip-version-check "moto[server]==$MOTO_VERSION"
fi
echo "test-deps: ok (tmux $(tmux -V | cut -d' ' -f2), moto $(.venv/bin/python -c 'import moto; print(moto.__version__)'))"
