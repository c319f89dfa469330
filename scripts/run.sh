#!/usr/bin/env bash
# Runs ClinicMeet. With a display: the relay (data in ./clinicmeet-data) in the
# background AND the desktop app pointed at it (the first-run screen comes
# pre-filled with its address and pin); the relay stops when the app closes.
# Without a display: the relay alone, in the foreground. Arguments go to the relay.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/clinicmeet/target}"

bin="$CARGO_TARGET_DIR/debug"
if [ -z "${DISPLAY:-}" ] && [ -z "${WAYLAND_DISPLAY:-}" ]; then
  # A relay server needs neither the UI nor WebKit nor the codecs: build the relay
  # alone, with only what that build needs installed.
  ./scripts/install-deps.sh relay
  echo "run: no display, starting the relay only" >&2
  exec cargo run --locked --bin clinicmeet-relay -- "$@"
fi

./scripts/install-deps.sh
(cd ui && { [ -d node_modules ] || npm ci --no-audit --no-fund; } && npm run build)
# The whole workspace, as scripts/test.sh builds it: the same feature set, so
# the two share every compiled dependency (`-p` builds resolve features apart).
cargo build --locked --workspace

log="$(mktemp -t clinicmeet-relay.XXXXXX)"
"$bin/clinicmeet-relay" "$@" >"$log" 2>&1 &
relay_pid=$!
trap 'kill "$relay_pid" 2>/dev/null || true; wait "$relay_pid" 2>/dev/null || true' EXIT

# The relay prints {"event":"listening","quic":"ADDR:PORT","pin":"sha256/…",…} when ready.
line=""
for _ in $(seq 1 100); do
  line="$(grep -m1 '"event":"listening"' "$log" || true)"
  [ -n "$line" ] && break
  kill -0 "$relay_pid" 2>/dev/null || { cat "$log" >&2; echo "run: the relay did not start" >&2; exit 1; }
  sleep 0.1
done
[ -n "$line" ] || { cat "$log" >&2; echo "run: the relay did not report its address" >&2; exit 1; }
port="$(printf '%s' "$line" | sed -E 's/.*"quic":"[^"]*:([0-9]+)".*/\1/')"
pin="$(printf '%s' "$line" | sed -E 's/.*"pin":"([^"]+)".*/\1/')"
echo "run: relay on port $port, pin $pin (log: $log)" >&2

CLINICMEET_RELAY="${CLINICMEET_RELAY:-127.0.0.1:$port}" CLINICMEET_PIN="${CLINICMEET_PIN:-$pin}" \
  "$bin/clinicmeet-app"
