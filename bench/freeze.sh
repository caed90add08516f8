#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# vd-freeze against the way the original Fabric tool asked: PER_HOST venvs
# on each of HOSTS hosts (default 5 on 4), `vd-targets | vd-freeze` (one
# session per host, hosts in parallel) vs a serial loop of OpenSSH
# `ssh HOST VENV/bin/pip freeze`. The hosts are the loopback fleet
# (bench/fleet.sh, which also says which user logs in); the venvs are real
# and made once (cached under target/bench). Medians of BENCH_RUNS runs.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=lib.sh
. "$here/lib.sh"
# shellcheck source=fleet.sh
. "$here/fleet.sh"
cd "$here/.."
HOSTS=${HOSTS:-4}
PER_HOST=${PER_HOST:-5}
bench_tools vd-targets vd-freeze
# The serial loop runs ssh as it is.
fleet_require ssh=openssh-client

count=$((HOSTS * PER_HOST))
cache=$PWD/target/bench/venvs-$("$FLEET_PYTHON" -c 'import sys; print(sys.version_info[0], sys.version_info[1], sep=".")')-$(echo "$FLEET_PYTHON" | tr / _)
fleet_venvs "$cache" "$count"
trap fleet_stop EXIT
fleet_start "$HOSTS"
work=$FLEET_DIR
fleet_inventory "$PER_HOST" "$cache/v" >"$work/targets.csv"

vd_run() {
    "$VD_BIN/vd-targets" -i "$work/targets.csv" | "$VD_BIN/vd-freeze" >"$work/freeze.jsonl"
}
ssh_run() {
    tail -n +2 "$work/targets.csv" | while IFS=, read -r host port user venv; do
        ssh -n "${FLEET_SSH[@]}" -p "$port" "$user@$host" "$venv/bin/pip freeze" >/dev/null
    done
}

# Warm up both (page cache, first connections), and check vd's answer.
vd_run
ssh_run
[ "$(wc -l <"$work/freeze.jsonl")" -eq "$count" ] || { echo "bench: vd-freeze wrote the wrong number of records" >&2; exit 1; }
if grep -q '"error"' "$work/freeze.jsonl"; then echo "bench: vd-freeze failed:" >&2; grep '"error"' "$work/freeze.jsonl" >&2; exit 1; fi

vd_times=() ssh_times=()
for _ in $(seq 1 "$BENCH_RUNS"); do
    vd_times+=("$(bench_time vd_run)")
    ssh_times+=("$(bench_time ssh_run)")
done
bench_heading "vd-freeze: $count venvs on $HOSTS hosts, login $FLEET_USER"
bench_runs_header
bench_runs_row "vd-targets | vd-freeze" "${vd_times[@]}"
bench_runs_row "serial ssh HOST VENV/bin/pip freeze" "${ssh_times[@]}"
bench_ratios_header
bench_ratio_row "speed-up: serial ssh / vd" "$(bench_median "${ssh_times[@]}")" "$(bench_median "${vd_times[@]}")"
