#!/usr/bin/env bash
# Runs ClinicMeet: the relay with embedded defaults (data in ./clinicmeet-data).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/clinicmeet/target}"
exec cargo run --locked --bin clinicmeet-relay -- "$@"
