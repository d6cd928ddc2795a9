#!/bin/sh
# sshd AuthorizedKeysCommand for the test rig, emulating EC2 Instance Connect on an
# instance: prints the public keys pushed for USER in the last 60 seconds.
# Installed root-owned by scripts/test-deps.sh (sshd refuses anything else).
# Usage (sshd_config): AuthorizedKeysCommand /usr/local/libexec/ec2ssh-test/authorized-keys KEYS_DIR %u
# Keys are the files KEYS_DIR/USER/*.pub; their mtime is the push time.
set -eu
[ "$#" -eq 2 ] || exit 0
dir=$1
user=$2
case $user in
    '' | *[!a-z0-9_-]* | [!a-z_]*) exit 0 ;;
esac
[ "${#user}" -le 32 ] || exit 0
[ -d "$dir/$user" ] || exit 0
find "$dir/$user" -maxdepth 1 -type f -name '*.pub' -mmin -1 -exec cat {} +
