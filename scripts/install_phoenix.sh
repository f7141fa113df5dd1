#!/usr/bin/env bash
# Install a pinned Arize Phoenix into its own virtual environment, `.venv-phoenix`.
#
# Phoenix is a large server (hundreds of MB of dependencies) that the end-to-end tests start
# as a real tracing backend. It lives in a venv separate from the project's `.venv` so its
# pins never clash with the project's own OpenTelemetry versions.
#
# Idempotent: a stamp file records the installed version; when it matches PHOENIX_VERSION the
# script exits at once. Output is quiet; errors still surface.
#
# Environment:
#   PYTHON              interpreter used to create the venv (default: python3)
#   PHOENIX_VENV        venv directory (default: <repo root>/.venv-phoenix)
#   PHOENIX_VERSION     override the pinned version (default: the pin below)
set -euo pipefail

# The pin: the newest release that installs and serves on Python 3.11 here.
readonly DEFAULT_PHOENIX_VERSION="20.26.1"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python_bin="${PYTHON:-python3}"
venv_dir="${PHOENIX_VENV:-${repo_root}/.venv-phoenix}"
version="${PHOENIX_VERSION:-${DEFAULT_PHOENIX_VERSION}}"
stamp="${venv_dir}/.phoenix-installed"

if [[ -f "${stamp}" && "$(cat "${stamp}")" == "${version}" && -x "${venv_dir}/bin/phoenix" ]]; then
    exit 0
fi

start_s="$(date +%s)"
echo "install_phoenix: installing arize-phoenix==${version} into ${venv_dir}" >&2

if [[ ! -x "${venv_dir}/bin/python" ]]; then
    "${python_bin}" -m venv "${venv_dir}"
fi
rm -f "${stamp}"
"${venv_dir}/bin/python" -m pip install --quiet --quiet --disable-pip-version-check --upgrade pip
"${venv_dir}/bin/python" -m pip install --quiet --quiet --disable-pip-version-check \
    "arize-phoenix==${version}"
# Import check: a broken install must fail here, not later inside a test.
"${venv_dir}/bin/python" -c "import phoenix.server.main" >/dev/null
echo "${version}" >"${stamp}"

elapsed=$(($(date +%s) - start_s))
size="$(du -sh "${venv_dir}" 2>/dev/null | cut -f1)"
echo "install_phoenix: done in ${elapsed}s, ${venv_dir} is ${size}" >&2
