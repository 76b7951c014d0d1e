#!/usr/bin/env bash
# Install everything the test suite needs on a fresh Debian machine, then run it.
# Debian packages need root (or sudo); Python packages go into ./.venv.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBIAN_PACKAGES=(
    tcpdump libpcap0.8 dovecot-pop3d dovecot-imapd fetchmail mutt dnsmasq-base openssl curl tshark
    chromium fonts-wqy-microhei groff-base
    gcc python3-dev  # the compiled build (setup.py, mypyc); without them pip installs pure Python
)
DEBIAN_PACKAGES+=(tcpreplay iproute2)  # live: traffic replayed in a network namespace
missing=()
for pkg in "${DEBIAN_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# Compiled with mypyc (a C compiler is there); under CI a failed compilation is an error, not
# a silent fall back to pure Python. MAILSNIFF_PURE=1 builds and tests the pure-Python version.
if [ "${CI:-}" = "true" ] && [ -z "${MAILSNIFF_PURE:-}" ]; then
    export MAILSNIFF_COMPILED=1
fi
.venv/bin/python -m pip install -q -e '.[test]'
exec .venv/bin/python -m pytest "$@"
