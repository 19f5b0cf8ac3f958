#!/bin/sh
# Installs the Debian packages aloe builds, tests and runs with.
# Idempotent: installs only what is missing. Needs root (or sudo).
set -e
PKGS="build-essential pkg-config clang libclang-rt-14-dev
      libcurl4-openssl-dev libjansson-dev libsqlite3-dev libpcre2-dev libutf8proc-dev
      libopenblas-dev libopenblas0-pthread libmicrohttpd-dev libyaml-dev
      python3 util-linux nodejs
      chromium"
# npm comes inside some nodejs builds (NodeSource's); Debian packages it apart
command -v npm >/dev/null 2>&1 || PKGS="$PKGS npm"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO=sudo
    echo "installing:$missing"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing
fi
