#!/usr/bin/env bash
# Install livekit-otel, its development tools and the devkit into a virtual environment,
# in an order where no development tool can hold back or downgrade what users get.
#
# usage: scripts/install_dev.sh VENV [REQUIREMENT ...]
#
#   scripts/install_dev.sh .venv                                  # what `make install` runs
#   scripts/install_dev.sh .venvs/lk-1.3.6 livekit-agents==1.3.6 'openai<3'
#
# 1. The package alone, editable, with the extra REQUIREMENTs: pip resolves livekit-agents
#    and OpenTelemetry as it does for a user's `pip install livekit-otel` (eager upgrade,
#    so a reused environment also moves to the newest releases).
# 2. Every package step 1 left installed is frozen into VENV/livekit-otel-constraints.txt,
#    but for the contrib packages of the dev tools, which pin one contrib or SDK release
#    (opentelemetry-distro, the aiohttp-client instrumentation and its util-http, the
#    Prometheus exporter): left by an earlier install, they would hold step 1's new
#    releases back, so pip picks them again for the releases step 1 resolved.
# 3. The `dev` extra (the `prometheus` extra included) and the devkit, under those
#    constraints: a tool that would need another livekit-agents or OpenTelemetry release
#    makes this step fail, loudly, instead of downgrading them.
# 4. opentelemetry-instrumentation-aiohttp-client (tests/test_context_propagation.py) at
#    the contrib release of the installed opentelemetry-instrumentation. When that release
#    of it is not published (none exists for SDK 1.45.2 / contrib 0.66b2: its 0.66b1 pins
#    the SDK's API at 1.45.1), the newest earlier one is installed without its pinned
#    dependencies rather than letting it move the SDK.
#
# Progress: one line per package pip collects, and the time of each step; pip's whole
# output goes to VENV/install.log, whose end is shown when a step fails.
# Environment: PYTHON (interpreter for a new VENV, default python3).

set -euo pipefail

if [ $# -lt 1 ]; then
    sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$1"
shift
EXTRA=("$@")
PY="$VENV/bin/python"
LOG="$VENV/install.log"
CONSTRAINTS="$VENV/livekit-otel-constraints.txt"
AIOHTTP_CLIENT="opentelemetry-instrumentation-aiohttp-client"
PROMETHEUS_EXPORTER="opentelemetry-exporter-prometheus"
DISTRO="opentelemetry-distro"
UTIL_HTTP="opentelemetry-util-http"
started=$SECONDS

if [ ! -x "$PY" ]; then
    "${PYTHON:-python3}" -m venv "$VENV"
fi
: > "$LOG"

# pip install "$@", one line per collected package on the terminal, everything in $LOG
pip_install() {
    local rc
    set +e
    "$PY" -m pip install --disable-pip-version-check --progress-bar off "$@" 2>&1 \
        | tee -a "$LOG" \
        | awk '/^Collecting / { print "    " $2; fflush() }
               /^Successfully installed / { print "    installed " NF - 2 " packages"; fflush() }'
    rc=${PIPESTATUS[0]}
    set -e
    return "$rc"
}

step() {
    echo "install: [$((SECONDS - started))s] $*"
}

fail() {
    echo "install: FAILED: $* (last lines of $LOG below)" >&2
    tail -n 30 "$LOG" >&2
    exit 1
}

version_of() {
    "$PY" -c 'import importlib.metadata as m, sys; print(m.version(sys.argv[1]))' "$1"
}

step "pip itself"
pip_install --upgrade pip || fail "upgrading pip"

step "1/4 livekit-otel and what it needs, as users get it ${EXTRA[*]}"
pip_install --upgrade --upgrade-strategy eager -e "$ROOT" "${EXTRA[@]}" \
    || fail "installing livekit-otel"

"$PY" -m pip list --disable-pip-version-check --format=freeze --exclude-editable 2>/dev/null \
    | grep -v -i -e "^${AIOHTTP_CLIENT}==" -e "^${UTIL_HTTP}==" -e "^${DISTRO}==" \
        -e "^${PROMETHEUS_EXPORTER}==" > "$CONSTRAINTS"
step "2/4 $(wc -l < "$CONSTRAINTS") packages held at these versions ($CONSTRAINTS)"

step "3/4 development tools and the devkit"
pip_install -c "$CONSTRAINTS" -e "$ROOT[dev]" -e "$ROOT/devkit" \
    || fail "a development tool needs other versions than livekit-otel resolved"

contrib="$(version_of opentelemetry-instrumentation)"
step "4/4 $AIOHTTP_CLIENT for OpenTelemetry contrib $contrib"
if ! pip_install -c "$CONSTRAINTS" "$AIOHTTP_CLIENT==$contrib"; then
    echo "    $AIOHTTP_CLIENT $contrib is not published: installing the newest earlier" \
        "release without the dependencies that would pin an older SDK"
    pip_install -c "$CONSTRAINTS" "$UTIL_HTTP==$contrib" \
        || fail "installing $UTIL_HTTP $contrib"
    pip_install --no-deps "$AIOHTTP_CLIENT<=$contrib" || fail "installing $AIOHTTP_CLIENT"
fi
"$PY" -c "import opentelemetry.instrumentation.aiohttp_client, livekit.agents" \
    || fail "importing the installed packages"

step "done: livekit-agents $(version_of livekit-agents)," \
    "opentelemetry-sdk $(version_of opentelemetry-sdk)," \
    "$AIOHTTP_CLIENT $(version_of "$AIOHTTP_CLIENT")," \
    "$PROMETHEUS_EXPORTER $(version_of "$PROMETHEUS_EXPORTER")"
