#!/usr/bin/env bash
# Quick start on a fresh Debian machine: installs what is missing, builds mixlab in release
# mode, makes this checkout a mixlab workspace and runs the quickstart experiment (its input
# models are synthesized, nothing is downloaded). Running it again reuses every output.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
swift build -c release --product mixlab
BIN=.build/release/mixlab
$BIN init . >/dev/null
$BIN run experiments/quickstart "$@"
echo
$BIN log --experiment quickstart
echo
echo "Notebook: artifacts/quickstart/REPORT.md    Rebuild a mix: $BIN reproduce <hash>"
