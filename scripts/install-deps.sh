#!/usr/bin/env bash
# Install what unicity-infra and its tests need on a Debian host: the Debian
# programs the component tests start (HAProxy, nginx, certbot, Pebble), the
# build tools for the offline images (debootstrap, protobuf, OpenSSL headers),
# a registry for the push tests and shellcheck for the workflow's shell steps
# and the Python package itself with its test extras. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(debootstrap haproxy nginx-light certbot pebble protobuf-compiler pkg-config libssl-dev openssl curl ca-certificates
          docker-registry shellcheck)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
    echo "==> apt-get install ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The Debian packages enable system services; the tests start their own copies.
for service in nginx haproxy docker-registry; do
    if command -v systemctl >/dev/null && systemctl is-active --quiet "$service" 2>/dev/null; then
        systemctl stop "$service" || true
    fi
done

if ! command -v cargo >/dev/null; then
    echo "error: cargo not found; the offline relay image builds nostr-rs-relay from crates.io and needs a Rust toolchain" >&2
    exit 1
fi

echo "==> pip install -e .[test]"
python3 -m pip install -q --disable-pip-version-check -e '.[test]'
