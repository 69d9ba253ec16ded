#!/bin/sh
# Runs keyward scan and gitleaks side by side (quality, speed, start-up) and
# prints markdown tables. gitleaks is installed into a temporary GOBIN by the
# Go program (go install -tags gore2regex ...@v8.30.1); nothing is committed.
# Usage: bench/scan/run.sh [flags of bench/scan, e.g. -runs 5 -gitleaks /path/to/gitleaks]
set -eu
cd "$(dirname "$0")/../.."
exec go run ./bench/scan "$@"
