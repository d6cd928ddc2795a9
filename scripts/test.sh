#!/usr/bin/env bash
# The whole test suite: installs what it needs, checks formatting and lints, runs
# every test. This is the command the README gives and .ci/run calls.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/test-deps.sh
cargo fmt --all -- --check
cargo clippy --locked --all-targets -- -D warnings
# The layers call only downwards: no module-graph cycles (README, Architecture).
scripts/module-graph.py
cargo test --locked
