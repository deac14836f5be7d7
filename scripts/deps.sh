#!/usr/bin/env bash
# Installs what a fresh Debian machine lacks to build and test mixlab:
# libgit2-dev, libsqlite3-dev, pkg-config (apt), and the Python reference reader used by the
# interoperability tests (pip: safetensors, numpy). Idempotent; quiet when all is present.
set -euo pipefail

need=()
for pkg in libgit2-dev libsqlite3-dev pkg-config; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "deps: installing ${need[*]}" >&2
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

if command -v python3 >/dev/null 2>&1; then
  if ! python3 -c 'import safetensors, numpy' >/dev/null 2>&1; then
    echo "deps: installing python safetensors + numpy" >&2
    python3 -m pip install -q safetensors numpy >/dev/null 2>&1 \
      || python3 -m pip install -q --user safetensors numpy >/dev/null 2>&1 \
      || python3 -m pip install -q --break-system-packages safetensors numpy >/dev/null
  fi
fi
