#!/usr/bin/env bash
# vd-freeze against the way the original Fabric tool asked: 20 venvs on 4
# hosts, `vd-targets | vd-freeze` (one session per host, hosts in parallel)
# vs a serial loop of OpenSSH `ssh HOST VENV/bin/pip freeze`. The hosts are
# one throwaway sshd on 4 loopback addresses (bench/fleet.sh, which also says
# which user logs in); the venvs are real and made once (cached under
# target/bench). Prints the median of RUNS runs of each.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
. bench/fleet.sh
RUNS=${RUNS:-${BENCH_RUNS:-5}}
HOSTS=4
PER_HOST=5
BIN=${BIN:-target/release}
[ -x "$BIN/vd-freeze" ] || { echo "bench: no $BIN/vd-freeze; run make build" >&2; exit 1; }

fleet_user
cache=$PWD/target/bench/venvs-$("$FLEET_PYTHON" -c 'import sys; print(sys.version_info[0], sys.version_info[1], sep=".")')-$(echo "$FLEET_PYTHON" | tr / _)
fleet_venvs "$cache" $((HOSTS * PER_HOST))
trap fleet_stop EXIT
fleet_start $HOSTS
work=$FLEET_DIR
fleet_inventory $PER_HOST "$cache/v" >"$work/targets.csv"

vd_run() {
    "$BIN/vd-targets" -i "$work/targets.csv" | "$BIN/vd-freeze" > "$work/freeze.jsonl"
}
ssh_run() {
    tail -n +2 "$work/targets.csv" | while IFS=, read -r host port user venv; do
        ssh -n "${FLEET_SSH[@]}" -p "$port" "$user@$host" "$venv/bin/pip freeze" > /dev/null
    done
}

# Warm up both (page cache, first connections), and check vd's answer.
vd_run
ssh_run
[ "$(wc -l < "$work/freeze.jsonl")" -eq $((HOSTS * PER_HOST)) ] || { echo "bench: vd-freeze wrote the wrong number of records" >&2; exit 1; }
if grep -q '"error"' "$work/freeze.jsonl"; then echo "bench: vd-freeze failed:" >&2; grep '"error"' "$work/freeze.jsonl" >&2; exit 1; fi

vd_times=() ssh_times=()
for _ in $(seq 1 "$RUNS"); do
    vd_times+=("$(bench_time vd_run)")
    ssh_times+=("$(bench_time ssh_run)")
done
vd=$(bench_median "${vd_times[@]}")
ssh=$(bench_median "${ssh_times[@]}")
printf '%d venvs on %d hosts (loopback, %s cores), login %s, median of %d runs\n' \
    $((HOSTS * PER_HOST)) "$HOSTS" "$(nproc)" "$FLEET_USER" "$RUNS"
printf '  %-44s %8.3f s\n' "vd-targets | vd-freeze" "$vd"
printf '  %-44s %8.3f s\n' "serial ssh HOST VENV/bin/pip freeze" "$ssh"
printf '  %-44s %8.1fx\n' "speed-up" "$(bench_ratio "$ssh" "$vd")"
