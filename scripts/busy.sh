#!/usr/bin/env bash
# Run a command while other processes keep every core busy, then stop them.
#
#   bash scripts/busy.sh COMMAND [ARGS...]
#
# BUSY_PROCESSES (default: the number of cores) spinning Python processes start first; each
# is also bounded by BUSY_SECONDS (default 3600) so none outlives a killed run. They are
# stopped by their process ids when the command ends, and the command's exit status is kept.
set -u

count="${BUSY_PROCESSES:-$(nproc)}"
seconds="${BUSY_SECONDS:-3600}"
python="${BUSY_PYTHON:-python3}"
pids=()

stop_spinners() {
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null
  done
  if ((${#pids[@]})); then
    echo "busy.sh: stopped ${#pids[@]} spinning processes (${pids[*]})"
  fi
}
trap stop_spinners EXIT
trap 'exit 130' INT TERM

for _ in $(seq "$count"); do
  timeout "$seconds" "$python" -c 'while True: pass' &
  pids+=("$!")
done
echo "busy.sh: $count spinning processes (${pids[*]}), each stopped after at most ${seconds} s"

"$@"
