#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs missing system packages, then runs
# every Swift Testing suite (unit, engine, provenance and the end-to-end suite that drives the
# built `mixlab` binary).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
swift build --build-tests
swift test --skip-build --disable-xctest "$@"
