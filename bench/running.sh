#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# What the scan of running processes costs the drift check: `vd-targets |
# vd-freeze | vd-diff --check` over PER_HOST venvs on each of HOSTS hosts
# (default 10 on 10), as vd-freeze runs it (the scan of /proc rides each
# host's freeze command) against the same run without the scan
# (VD_BENCH_NO_SCAN=1, a switch only this benchmark uses). The runs
# alternate, so both see the same machine load. SERVICES processes
# (default 20) run from the venvs as the login user while it is timed, half
# of them forked, so the scan has processes to find and report. The hosts
# are the loopback fleet (bench/fleet.sh); the venvs are real and made once
# (cached under target/bench), each with PROJECTS (default 10) wheels.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=lib.sh
. "$here/lib.sh"
# shellcheck source=fleet.sh
. "$here/fleet.sh"
cd "$here/.."
HOSTS=${HOSTS:-10}
PER_HOST=${PER_HOST:-10}
PROJECTS=${PROJECTS:-10}
SERVICES=${SERVICES:-20}
bench_tools vd-targets vd-freeze vd-diff vd-add
fleet_require setsid=util-linux

count=$((HOSTS * PER_HOST))
dist=$PWD/target/bench/running-dist-$PROJECTS
[ -e "$dist/.ready" ] || { python3 bench/make_wheels.py "$dist" "$PROJECTS" 1 && touch "$dist/.ready"; }
pins=()
for i in $(seq 0 $((PROJECTS - 1))); do pins+=("$(printf 'bench-pkg-%04d==1.0' "$i")"); done
cache=$PWD/target/bench/running-venvs-$PROJECTS-$(echo "$FLEET_PYTHON" | tr / _)
fleet_venvs "$cache" "$count" --find-links "$dist" "${pins[@]}"

services=()
stop_services() {
    local pid
    for pid in "${services[@]}"; do kill -- "-$pid" 2>/dev/null || true; done
    services=()
}
trap 'stop_services; fleet_stop' EXIT
fleet_start "$HOSTS"
work=$FLEET_DIR
"$VD_BIN/vd-add" --repo "$work/repo" "$dist"/*.whl >/dev/null
printf '%s\n' "${pins[@]}" >"$work/reqs.txt"
fleet_inventory "$PER_HOST" "$cache/v" >"$work/targets.csv"

# The services: Python processes run from the venvs, as the login user
# (whose processes the scan may read), each in a session of its own.
as_login() {
    if [ "$(id -un)" = "$FLEET_USER" ]; then "$@"; else runuser -u "$FLEET_USER" -- "$@"; fi
}
export -f as_login
export FLEET_USER
for i in $(seq 1 "$SERVICES"); do
    venv=$cache/v$(((i * 7) % count + 1))
    code='import time; time.sleep(3600)'
    [ $((i % 2)) -eq 0 ] && code='import os, time; os.fork(); time.sleep(3600)'
    # shellcheck disable=SC2016 # expanded by the inner bash
    setsid bash -c 'as_login "$@" </dev/null >/dev/null 2>&1' _ "$venv/bin/python" -c "$code" &
    services+=("$!")
done

check() {
    "$VD_BIN/vd-targets" -i "$work/targets.csv" | "$VD_BIN/vd-freeze" | "$VD_BIN/vd-diff" --repo "$work/repo" --check "$work/reqs.txt"
}
export -f check
export work

# Warm up both, and check the answer: every target in sync, its processes
# listed.
check >"$work/scan.jsonl"
VD_BENCH_NO_SCAN=1 check >"$work/no-scan.jsonl"
[ "$(wc -l <"$work/scan.jsonl")" -eq "$count" ] || { echo "bench: the check wrote the wrong number of records" >&2; exit 1; }
if grep -q '"error"' "$work/scan.jsonl"; then echo "bench: the check failed:" >&2; grep '"error"' "$work/scan.jsonl" >&2; exit 1; fi
found=$(python3 -c 'import json, sys; print(sum(len(json.loads(l).get("running", [])) for l in open(sys.argv[1])))' "$work/scan.jsonl")
[ "$found" -ge "$SERVICES" ] || { echo "bench: the scan found $found processes, not $SERVICES or more" >&2; exit 1; }
! grep -q '"running"' "$work/no-scan.jsonl" || { echo "bench: VD_BENCH_NO_SCAN=1 still scanned" >&2; exit 1; }

bench_pair "" "check" "VD_BENCH_NO_SCAN=1 check"
bench_heading "The drift check with the scan of running processes: $count venvs on $HOSTS hosts, login $FLEET_USER, $found processes found"
bench_runs_header
bench_runs_row "vd-targets | vd-freeze | vd-diff --check, with the scan" "${TIMES_A[@]}"
bench_runs_row "the same without it (VD_BENCH_NO_SCAN=1)" "${TIMES_B[@]}"
bench_ratios_header
bench_ratio_row "with the scan / without" "$MEDIAN_A" "$MEDIAN_B" "<=" 1.2
