#!/usr/bin/env bash
# Install a pinned Arize Phoenix into its own virtual environment, `.venv-phoenix`.
#
# Phoenix is a large server (hundreds of MB of dependencies) that the end-to-end tests start
# as a real tracing backend. It lives in a venv separate from the project's `.venv` so its
# pins never clash with the project's own OpenTelemetry versions.
#
# Idempotent: a stamp file records the installed version; when it matches PHOENIX_VERSION the
# script exits at once. While installing it prints one line per package pip collects (the
# first install takes a few minutes); pip's whole output goes to <venv>/install.log, whose
# end is shown when the install fails.
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
log="${venv_dir}/install.log"
: >"${log}"

# pip install "$@": one line per collected package on stderr, everything in the log
pip_install() {
    local rc
    set +e
    "${venv_dir}/bin/python" -m pip install --disable-pip-version-check --progress-bar off "$@" 2>&1 \
        | tee -a "${log}" \
        | awk '/^Collecting / { print "    " $2; fflush() }
               /^Successfully installed / { print "    installed " NF - 2 " packages"; fflush() }' >&2
    rc=${PIPESTATUS[0]}
    set -e
    if [[ "${rc}" -ne 0 ]]; then
        tail -n 30 "${log}" >&2
        echo "install_phoenix: pip failed (whole output in ${log})" >&2
    fi
    return "${rc}"
}

pip_install --upgrade pip
pip_install "arize-phoenix==${version}"
# Import check: a broken install must fail here, not later inside a test.
"${venv_dir}/bin/python" -c "import phoenix.server.main" >/dev/null
echo "${version}" >"${stamp}"

elapsed=$(($(date +%s) - start_s))
size="$(du -sh "${venv_dir}" 2>/dev/null | cut -f1)"
echo "install_phoenix: done in ${elapsed}s, ${venv_dir} is ${size}" >&2
