#!/usr/bin/env bash
# Republish every committed result set (and the tests' fixture) from its own data after a change to the report
# code: the manifest then names the commit the report is generated at, and what changed since measuring.
# Nothing is measured again. Usage: scripts/republish.sh   (from the repository root, vmibench installed)
set -euo pipefail
cd "$(dirname "$0")/.."
for manifest in results/*/manifest.json tests/fixtures/resultset/manifest.json; do
    [ -f "$manifest" ] || continue
    dir=$(dirname "$manifest")
    vmibench publish --db "$dir/store.sqlite" --out "$dir"
done
