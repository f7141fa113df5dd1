#!/usr/bin/env bash
# Run the offline test suite against several livekit-agents releases.
#
# usage: scripts/test_matrix.sh [RELEASE ...] [-- PYTEST_ARGS ...]
#
#   scripts/test_matrix.sh                    # the default releases below
#   scripts/test_matrix.sh 1.3.6 1.8.9        # only these
#   scripts/test_matrix.sh 1.5.17 -- -k tool  # extra pytest arguments after --
#   LK_RELEASES="1.4.6 1.7.1" scripts/test_matrix.sh
#
# Each release gets its own virtual environment, .venvs/lk-<release>, set up by
# scripts/install_dev.sh as `make install` sets up .venv: the project with that exact
# livekit-agents release first (pip picks the newest OpenTelemetry the release allows,
# as for a user), then the dev tools and the devkit under constraints that cannot change
# those versions. An environment is reused as long as its stamp matches (release, extra
# pins, pyproject files, install script); LK_MATRIX_REFRESH=1 reinstalls.
# Then `python -m pytest -q -m "not e2e"` runs in it from the repository root. A table at
# the end gives, per release, the opentelemetry-sdk resolved, the setup time and the test
# result; the exit status is non-zero when any release failed.
#
# Environment: PYTHON (interpreter for new venvs, default python3), LK_RELEASES,
# LK_MATRIX_EXTRA_PINS (pins added for every release), LK_MATRIX_REFRESH,
# LK_MATRIX_VENVS (venv folder, default .venvs), LK_MATRIX_LOGS (log folder, default
# <venv folder>/logs), LK_MATRIX_TIMEOUT (seconds per release's pytest run, default 900).

set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
VENVS="${LK_MATRIX_VENVS:-$ROOT/.venvs}"
LOGS="${LK_MATRIX_LOGS:-$VENVS/logs}"
DEFAULT_RELEASES="1.3.6 1.5.17 1.6.10 1.8.9"
TEST_TIMEOUT="${LK_MATRIX_TIMEOUT:-900}"

releases=()
pytest_args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --) shift; pytest_args=("$@"); break ;;
        -h|--help) sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) releases+=("$1"); shift ;;
    esac
done
if [ ${#releases[@]} -eq 0 ]; then
    read -r -a releases <<< "${LK_RELEASES:-$DEFAULT_RELEASES}"
fi

# true when version $1 sorts strictly before version $2
version_lt() {
    [ "$1" != "$2" ] && [ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -n 1)" = "$1" ]
}

# Extra pins a release needs so that its environment resolves and `import livekit.agents`
# works; LK_MATRIX_EXTRA_PINS (space separated) is added for every release.
# - Before 1.8.7 livekit-agents imports httpx (livekit/agents/inference/*.py), but
#   1.3.6-1.6.9 let pip pick openai 3.x, which no longer depends on httpx: pin openai below
#   3 (1.6.10+ cap it themselves; the pin is harmless there). 1.8.7+ need openai>=3.19.
# - Nothing holds OpenTelemetry back: each release gets the newest SDK it allows (1.45.2
#   for 1.8.7+ today), the one a user's plain install gets. install_dev.sh keeps the dev
#   tools from changing it.
extra_pins() {
    if version_lt "$1" 1.8.7; then
        echo "openai<3 ${LK_MATRIX_EXTRA_PINS:-}"
    else
        echo "${LK_MATRIX_EXTRA_PINS:-}"
    fi
}

stamp_of() {
    local ver="$1"
    {
        echo "livekit-agents==$ver"
        extra_pins "$ver"
        cat "$ROOT/pyproject.toml" "$ROOT/devkit/pyproject.toml" "$ROOT/scripts/install_dev.sh"
    } | sha256sum | cut -d' ' -f1
}

# Create or refresh .venvs/lk-<ver>; prints the setup time (or "reused") on stdout.
setup_venv() {
    local ver="$1" venv="$VENVS/lk-$1" log="$LOGS/install-$1.log"
    local stamp_file="$venv/.lk-otel-stamp" want
    want="$(stamp_of "$ver")"
    if [ -z "${LK_MATRIX_REFRESH:-}" ] && [ -x "$venv/bin/python" ] \
        && [ "$(cat "$stamp_file" 2>/dev/null)" = "$want" ]; then
        echo "reused"
        return 0
    fi
    local start=$SECONDS
    local -a pins
    read -r -a pins <<< "$(extra_pins "$ver")"
    echo "    setting up $venv (livekit-agents==$ver ${pins[*]}); progress in $log" >&2
    if ! (
        echo "== $(date -u +%FT%TZ) setting up $venv with: livekit-agents==$ver ${pins[*]}"
        PYTHON="$PYTHON" bash "$ROOT/scripts/install_dev.sh" "$venv" \
            "livekit-agents==$ver" "${pins[@]}" || exit 1
    ) > "$log" 2>&1; then
        rm -f "$stamp_file"
        echo "FAILED after $((SECONDS - start))s (see $log)"
        return 1
    fi
    echo "$want" > "$stamp_file"
    echo "$((SECONDS - start))s"
}

mkdir -p "$VENVS" "$LOGS"
cd "$ROOT" || exit 2

declare -a rows=()
failed=0
for ver in "${releases[@]}"; do
    echo ">>> livekit-agents $ver"
    setup="$(setup_venv "$ver")"
    setup_rc=$?
    venv="$VENVS/lk-$ver"
    if [ $setup_rc -ne 0 ]; then
        echo "    venv setup: $setup"
        rows+=("$ver|-|$setup|not run|FAIL")
        failed=1
        continue
    fi
    sdk="$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("opentelemetry-sdk"))' 2>/dev/null || echo '?')"
    echo "    venv: $setup, opentelemetry-sdk $sdk"
    log="$LOGS/pytest-$ver.log"
    timeout --kill-after=10 "$TEST_TIMEOUT" \
        "$venv/bin/python" -m pytest -q -m "not e2e" -p no:cacheprovider "${pytest_args[@]}" 2>&1 \
        | tee "$log"
    rc=${PIPESTATUS[0]}
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        printf '\npytest timed out after %ss\n' "$TEST_TIMEOUT" | tee -a "$log"
    fi
    summary="$(grep -E '([0-9]+ (passed|failed|error|errors|skipped|deselected)|no tests ran|timed out)' "$log" \
        | tail -n 1 | sed -E 's/^=+ //; s/ =+$//')"
    [ -n "$summary" ] || summary="pytest exit $rc"
    if [ "$rc" -eq 0 ]; then
        status="ok"
    else
        status="FAIL"
        failed=1
    fi
    rows+=("$ver|$sdk|$setup|$summary|$status")
done

echo
printf '%-10s %-12s %-10s %-6s %s\n' "release" "otel-sdk" "setup" "status" "tests"
printf '%-10s %-12s %-10s %-6s %s\n' "-------" "--------" "-----" "------" "-----"
for row in "${rows[@]}"; do
    IFS='|' read -r ver sdk setup summary status <<< "$row"
    printf '%-10s %-12s %-10s %-6s %s\n' "$ver" "$sdk" "$setup" "$status" "$summary"
done
exit $failed
