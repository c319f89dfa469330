#!/usr/bin/env bash
# Installs what a fresh Debian/Ubuntu machine lacks to build and test ClinicMeet.
# Idempotent: only missing packages are installed, so a warm machine pays nothing.
#
#   install-deps.sh         everything: relay, clients, desktop app, UI and every test
#   install-deps.sh relay   a relay-only build (`cargo build -p clinicmeet-relay`)
set -euo pipefail

mode="${1:-all}"
case "$mode" in
  all | relay) ;;
  *) echo "usage: $0 [relay]" >&2; exit 2 ;;
esac

packages=(
  # build: C/C++ toolchain; cmake builds libopus; nasm gives openh264 its assembly;
  # clang/libclang for bindgen (nokhwa's V4L2 bindings).
  build-essential pkg-config cmake nasm clang libclang-dev
  # audio: ALSA headers for cpal, PulseAudio for the real-audio-path test (null sink).
  libasound2-dev pulseaudio pulseaudio-utils libasound2-plugins
  # network-impairment tests (namespaces, netem) and UI tests under a virtual display.
  iproute2 xvfb xauth
  # browser_net test: a firewall rule in the browser's namespace blocks UDP (nft; iptables as fallback).
  nftables
  # UI screenshots of the demo build (ui/scripts/screenshot.mjs drives it with playwright-core) and
  # the browser-guest test (tests/tests/browser.rs drives tests/browser/guest.mjs the same way).
  chromium
  # Desktop app (Tauri 2, src-tauri/): WebKitGTK 4.1 web view, SVG icons, tray/app indicator,
  # libxdo for menu accelerators, OpenSSL headers for tauri-cli; `file` for the bundler.
  libwebkit2gtk-4.1-dev librsvg2-dev libayatana-appindicator3-dev libxdo-dev libssl-dev file
  # Desktop app end-to-end test: WebKitWebDriver, which tauri-driver drives (tests/tests/desktop_app.rs).
  webkit2gtk-driver
  # ... a private D-Bus session bus whose notifications it records (dbus-daemon, dbus-monitor),
  # and the X window's title read back (xwininfo).
  dbus-daemon dbus-bin x11-utils
)
if [ "$mode" = relay ]; then
  # The relay has no codecs, devices, WebKit or UI (it depends on clinicmeet-rtp, not
  # clinicmeet-media): a C compiler for ring and the bundled SQLite is all it needs. No
  # cmake, nasm, clang or ALSA; not pkg-config either (SQLite is bundled, not probed).
  packages=(build-essential)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if [ "$mode" = relay ]; then
  if ! command -v cargo >/dev/null 2>&1; then
    echo "install-deps: cargo not found; install Rust with rustup (https://rustup.rs) first" >&2
    exit 1
  fi
  exit 0
fi

# UI: Node 20+ and npm run `npm ci`, `npm test`, `npm run build` in ui/.
if ! command -v npm >/dev/null 2>&1; then
  echo "install-deps: installing Node.js and npm for the UI (ui/)"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nodejs npm
fi
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 20 ]; then
  echo "install-deps: Node.js $node_major is too old for the UI; install Node.js 20 or newer" >&2
  exit 1
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "install-deps: cargo not found; install Rust with rustup (https://rustup.rs) first" >&2
  exit 1
fi

# Desktop app end-to-end test: tauri-driver (WebDriver proxy for Tauri apps) from crates.io, once.
if ! command -v tauri-driver >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/tauri-driver" ]; then
  echo "install-deps: installing tauri-driver (cargo install, about a minute)"
  cargo install tauri-driver --version '^2' --locked
fi
