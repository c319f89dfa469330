#!/usr/bin/env bash
# Builds the desktop app's Debian package without tauri-cli: the same contents as
# `cargo tauri build --bundles deb` (binary with the UI embedded, .desktop entry that
# registers the clinicmeet:// scheme, icons, dependencies on WebKitGTK 4.1 and GTK 3).
#
#   scripts/build-deb.sh            # release build → $CARGO_TARGET_DIR/release/bundle/deb/clinicmeet_<ver>_<arch>.deb
#   scripts/build-deb.sh --debug    # package the dev-profile binary (quick check of the packaging)
#
# Not part of scripts/test.sh (a release build takes long on small machines).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/clinicmeet/target}"

profile=release
[ "${1:-}" = "--debug" ] && profile=debug

(cd ui && { [ -d node_modules ] || npm ci --no-audit --no-fund; } && npm run build)
if [ "$profile" = release ]; then
  cargo build --locked --release -p clinicmeet-app
  dir=release
else
  cargo build --locked -p clinicmeet-app
  dir=debug
fi

version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
arch="$(dpkg --print-architecture)"
out="$CARGO_TARGET_DIR/$dir/bundle/deb"
root="$(mktemp -d -t clinicmeet-deb.XXXXXX)"
trap 'rm -rf "$root"' EXIT

install -Dm755 "$CARGO_TARGET_DIR/$dir/clinicmeet-app" "$root/usr/bin/clinicmeet-app"
# The release profile keeps line tables for backtraces in development; the package
# ships the binary without debug sections (177 MB → about 25 MB).
if [ "$profile" = release ]; then strip --strip-debug "$root/usr/bin/clinicmeet-app"; fi
install -Dm644 icons/32x32.png "$root/usr/share/icons/hicolor/32x32/apps/clinicmeet-app.png"
install -Dm644 icons/128x128.png "$root/usr/share/icons/hicolor/128x128/apps/clinicmeet-app.png"
install -Dm644 icons/128x128@2x.png "$root/usr/share/icons/hicolor/256x256/apps/clinicmeet-app.png"
install -d "$root/usr/share/applications" "$root/DEBIAN"
cat >"$root/usr/share/applications/ClinicMeet.desktop" <<EOF
[Desktop Entry]
Type=Application
Name=ClinicMeet
Comment=Secure video meetings for clinics
Exec=clinicmeet-app %u
Icon=clinicmeet-app
Terminal=false
Categories=Office;
MimeType=x-scheme-handler/clinicmeet;
EOF
size="$(du -sk "$root/usr" | cut -f1)"
cat >"$root/DEBIAN/control" <<EOF
Package: clinicmeet
Version: $version
Architecture: $arch
Maintainer: ClinicMeet <noreply@clinicmeet.invalid>
Installed-Size: $size
Depends: libwebkit2gtk-4.1-0, libgtk-3-0, libasound2
Section: net
Priority: optional
Description: Secure video meetings for clinics
 ClinicMeet: video meetings, waiting room and chat for clinics, connected to the
 clinic's own self-hosted relay.
EOF
cat >"$root/DEBIAN/postinst" <<'EOF'
#!/bin/sh
set -e
command -v update-desktop-database >/dev/null && update-desktop-database -q /usr/share/applications || true
command -v gtk-update-icon-cache >/dev/null && gtk-update-icon-cache -q -t /usr/share/icons/hicolor || true
EOF
chmod 755 "$root/DEBIAN/postinst"

mkdir -p "$out"
deb="$out/clinicmeet_${version}_${arch}.deb"
dpkg-deb --root-owner-group --build "$root" "$deb" >/dev/null
dpkg-deb --info "$deb" >/dev/null
echo "$deb"
