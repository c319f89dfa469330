#!/usr/bin/env bash
# Runs every ClinicMeet test: installs what is missing, builds the workspace once
# (dev profile, dependencies optimised), then runs unit, integration and end-to-end
# tests. End-to-end tests start the already-built binaries from the same target dir.
set -euo pipefail
cd "$(dirname "$0")/.."

# Each step prints how long the run has taken so far (`test: [412 s] …`).
step() { echo "test: [${SECONDS} s] $*"; }

step "system packages"
./scripts/install-deps.sh

# Reuse a target directory outside the clone when there is one (CI clones afresh).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/clinicmeet/target}"
mkdir -p "$CARGO_TARGET_DIR"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# The real-audio-path test starts its own PulseAudio with a null sink; require it
# to run (a missing PulseAudio is then a failure, not a skip).
export CLINICMEET_REQUIRE_PULSE="${CLINICMEET_REQUIRE_PULSE:-1}"
# The impaired-network tests (tests/tests/impaired.rs) create network namespaces
# and tc qdiscs themselves; CI runs as root, so a missing capability is a failure.
export CLINICMEET_REQUIRE_NETNS="${CLINICMEET_REQUIRE_NETNS:-1}"

# Test-only tools: rustfmt and clippy from rustup, cargo-deny (licence and ban policy, deny.toml).
step "test tools"
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
  rustup component add rustfmt clippy
fi
if ! cargo deny --version >/dev/null 2>&1; then
  echo "test: installing cargo-deny (cargo install, about five minutes)"
  cargo install cargo-deny --version '^0.20' --locked --no-default-features
fi

# Cheap checks first: formatting, licences and banned crates.
step "fmt, licences, bans"
cargo fmt --all --check
cargo deny --log-level error check licenses bans

# UI first: the desktop app (src-tauri/) embeds the production build of ui/ (ui/dist).
step "ui build"
(cd ui && npm ci --no-audit --no-fund && npm run build)

# One build for everything, including the desktop app the end-to-end tests start
# (tests/tests/desktop_app.rs drives its real window under a private Xvfb).
step "build"
cargo build --workspace --all-targets --locked
step "clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

# Fast tests: unit tests of every crate (threads in parallel), doc tests, the
# in-memory harness (real client cores against the real hub, tests/harness), and
# the UI's type check and unit tests (Vitest).
step "fast tests"
cargo test --workspace --locked --no-fail-fast --lib --bins
cargo test --workspace --locked --no-fail-fast --doc
cargo test --locked --no-fail-fast -p clinicmeet-harness
(cd ui && npm run typecheck && npm test)

# Then the integration and end-to-end tests, one at a time: they run real media
# (encoders, decoders, a browser) against frame-rate bars, and two of them side by
# side on two cores measure the machine rather than the product.
step "integration and end-to-end tests"
cargo test --workspace --locked --no-fail-fast --test '*' -- --test-threads=1
step "done"
