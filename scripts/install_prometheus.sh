#!/usr/bin/env bash
# Install Debian's Prometheus server (the `prometheus` package, 2.42 on Debian 12).
#
# The metrics tests (tests/support/prometheus.py) start the `prometheus` binary themselves on a
# free loopback port with a throw-away config and data directory. All this script provides is
# the binary: no system service is left running and nothing is left listening on port 9090.
#
# Idempotent: does nothing but print the version when `prometheus` is already on PATH.
# Needs root (apt-get). Recommended packages (prometheus-node-exporter and friends) are not
# installed.
set -euo pipefail

print_version() {
    # `prometheus --version` prints several lines; the first names the version.
    echo "install_prometheus: $(prometheus --version 2>&1 | head -n 1)" >&2
}

# Stop whatever the package's maintainer scripts may have started. Without systemd (as in
# containers and CI here) invoke-rc.d normally refuses to start services, but a sysvinit
# script or a leftover daemon must not keep port 9090 or a data directory busy.
stop_system_service() {
    if command -v service >/dev/null 2>&1 && [[ -x /etc/init.d/prometheus ]]; then
        service prometheus stop >/dev/null 2>&1 || true
    fi
    local pids
    # Only the daemon the package runs (user prometheus, config in /etc/prometheus); a
    # prometheus started by a test runs as the invoking user with a temporary config.
    pids="$(pgrep -u prometheus -x prometheus 2>/dev/null || true)"
    if [[ -n "${pids}" ]]; then
        echo "install_prometheus: stopping the system prometheus service (pid ${pids//$'\n'/ })" >&2
        # shellcheck disable=SC2086
        kill ${pids} 2>/dev/null || true
        for _ in $(seq 1 50); do
            pgrep -u prometheus -x prometheus >/dev/null 2>&1 || break
            sleep 0.1
        done
        pids="$(pgrep -u prometheus -x prometheus 2>/dev/null || true)"
        if [[ -n "${pids}" ]]; then
            # shellcheck disable=SC2086
            kill -KILL ${pids} 2>/dev/null || true
        fi
    fi
}

if command -v prometheus >/dev/null 2>&1; then
    print_version
    exit 0
fi

if [[ "$(id -u)" -ne 0 ]]; then
    echo "install_prometheus: prometheus is not installed and apt-get needs root (try: sudo $0)" >&2
    exit 1
fi

start_s="$(date +%s)"
echo "install_prometheus: installing Debian's prometheus package (apt-get update + install)" >&2
export DEBIAN_FRONTEND=noninteractive
log="$(mktemp)"
trap 'rm -f "${log}"' EXIT
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus; } \
    >"${log}" 2>&1; then
    tail -n 30 "${log}" >&2
    echo "install_prometheus: apt-get failed" >&2
    exit 1
fi
stop_system_service

if ! command -v prometheus >/dev/null 2>&1; then
    echo "install_prometheus: the package installed but prometheus is not on PATH" >&2
    exit 1
fi
echo "install_prometheus: installed in $(($(date +%s) - start_s))s" >&2
print_version
