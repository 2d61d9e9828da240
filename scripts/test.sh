#!/usr/bin/env bash
# The Flagstaff test command: ./scripts/test.sh [extra cargo test args...]
#
# * creates/reuses a Python venv at .venv with LaunchDarkly's official REST client
#   (launchdarkly-api==25.0.1) and server-side SDK (launchdarkly-server-sdk==9.20.0), both used
#   unmodified by the client-compatibility tests;
# * collects LaunchDarkly OpenAPI contract coverage in target/contract-coverage;
# * runs `cargo test --workspace --locked "$@"` and exits with cargo's status.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

LD_API_CLIENT_VERSION="25.0.1"
LD_SERVER_SDK_VERSION="9.20.0"
# The SDK's Redis feature store (daemon mode) needs the redis client.
REDIS_PY_VERSION="8.1.0"
venv="$repo/.venv"

if [ ! -x "$venv/bin/python" ]; then
    echo "test.sh: creating Python venv at $venv" >&2
    python3 -m venv "$venv"
fi
installed="$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("launchdarkly-api"))' 2>/dev/null || true)"
if [ "$installed" != "$LD_API_CLIENT_VERSION" ]; then
    echo "test.sh: installing launchdarkly-api==$LD_API_CLIENT_VERSION into $venv" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        "launchdarkly-api==$LD_API_CLIENT_VERSION"
fi
installed_sdk="$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("launchdarkly-server-sdk"))' 2>/dev/null || true)"
if [ "$installed_sdk" != "$LD_SERVER_SDK_VERSION" ]; then
    echo "test.sh: installing launchdarkly-server-sdk==$LD_SERVER_SDK_VERSION into $venv" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        "launchdarkly-server-sdk==$LD_SERVER_SDK_VERSION"
fi
installed_redis="$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("redis"))' 2>/dev/null || true)"
if [ "$installed_redis" != "$REDIS_PY_VERSION" ]; then
    echo "test.sh: installing redis==$REDIS_PY_VERSION into $venv" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        "redis==$REDIS_PY_VERSION"
fi
export FLAGSTAFF_PYTHON="$venv/bin/python"

coverage_dir="$repo/target/contract-coverage"
rm -rf "$coverage_dir"
mkdir -p "$coverage_dir"
export FLAGSTAFF_CONTRACT_COVERAGE_DIR="$coverage_dir"

reports_dir="$repo/target/reports"
rm -rf "$reports_dir"
export FLAGSTAFF_REPORT_DIR="$reports_dir"

status=0
cargo test --workspace --locked "$@" || status=$?

# Conformance reports the tests wrote (their own output is captured when they pass).
if [ -d "$reports_dir" ]; then
    cat "$reports_dir"/*.txt 2>/dev/null || true
fi

shopt -s nullglob
coverage_files=("$coverage_dir"/*.txt)
if [ "${#coverage_files[@]}" -gt 0 ]; then
    mapfile -t operations < <(cat "${coverage_files[@]}" | sed '/^[[:space:]]*$/d' | LC_ALL=C sort -u)
    if [ "${#operations[@]}" -gt 0 ]; then
        joined="$(printf '%s, ' "${operations[@]}")"
        echo "contract: ${#operations[@]} LaunchDarkly operations validated: ${joined%, }"
    fi
fi

exit "$status"
