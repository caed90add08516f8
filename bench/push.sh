#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# vd-push: CHANGED changed wheels (default 10) to PER_HOST venvs on each of
# HOSTS hosts (default 5 on 4: 20 venvs), the hosts being the loopback fleet
# (bench/fleet.sh, which also says which user logs in), against
#  (a) the original tool's way: a serial loop that copies each wheel to each
#      venv's host with scp, then runs `pip install --upgrade` on one wheel
#      at a time over ssh (a new connection each, as the fabfile did);
#  (b) the floor: the same `pip install --no-index --no-deps FILES` vd-push
#      runs, run directly on each venv without SSH, one venv at a time per
#      "host" and the hosts at once, as vd-push does by default.
# Before every timed run the venvs are put back to the old versions and the
# hosts' wheel caches emptied, so every run uploads and installs everything.
# Targets: vd-push at least 5x faster than (a), within 1.1x of (b).
# Medians of BENCH_RUNS runs; (a) takes minutes per run, and ORIGINAL_RUNS
# (default BENCH_RUNS) sets how many times it is timed. Each run's times are
# printed to stderr as taken.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=lib.sh
. "$here/lib.sh"
# shellcheck source=fleet.sh
. "$here/fleet.sh"
HOSTS=${HOSTS:-4}
PER_HOST=${PER_HOST:-5}
CHANGED=${CHANGED:-10}
ORIGINAL_RUNS=${ORIGINAL_RUNS:-$BENCH_RUNS}
bench_tools vd-add vd-targets vd-freeze vd-diff vd-push
# The serial loop (a) runs scp and ssh as they are.
fleet_require scp=openssh-client
count=$((HOSTS * PER_HOST))

trap fleet_stop EXIT
fleet_start "$HOSTS"
work=$FLEET_DIR
# What the login user writes: the venvs, vd-push's caches, (a)'s uploads.
remote=$work/remote
mkdir -p "$remote"

# Wheels: CHANGED packages at 1.0 (installed) and 1.1 (planned).
python3 "$here/make_wheels.py" "$work/dist" $((CHANGED * 2)) 2
"$VD_BIN/vd-add" --repo "$work/wheels" "$work"/dist/*.whl >/dev/null
for i in $(seq 0 $((CHANGED - 1))); do printf 'bench-pkg-%04d==1.1\n' "$i"; done >"$work/requirements.txt"
new_wheels=("$work"/wheels/*-1.1-*.whl)

# One venv with pip and the old versions; the targets are copies of it,
# each with a wheel cache of its host's (the hosts share this machine, and
# a shared cache would let one find the wheels another uploaded).
"$FLEET_PYTHON" -m venv "$work/template"
"$work/template/bin/python" -m pip install -q --no-index --no-deps --disable-pip-version-check "$work"/dist/*-1.0-*.whl
template_site=$(echo "$work"/template/lib/python3*/site-packages)
fleet_inventory "$PER_HOST" "$remote/venvs/v" |
    awk -F, -v OFS=, -v d="$remote/cache-" 'NR == 1 { print $0, "cache"; next } { print $0, d $1 }' >"$work/targets.csv"
hosts=() venvs=()
while IFS=, read -r host _ _ venv _; do
    hosts+=("$host") venvs+=("$venv")
    fleet_clone_venv "$work/template" "$venv" copy
done < <(tail -n +2 "$work/targets.csv")
reset_venvs() {
    fleet_reset_packages "$template_site" bench_pkg "${venvs[@]}"
    rm -rf "$remote"/cache-* "$remote"/scp-*
    chown -R "$FLEET_USER" "$remote"
    sync
}
reset_venvs
"$VD_BIN/vd-targets" -i "$work/targets.csv" | "$VD_BIN/vd-freeze" |
    "$VD_BIN/vd-diff" --repo "$work/wheels" "$work/requirements.txt" >"$work/plans.jsonl"
changes=$(grep -o '"action":"upgrade"' "$work/plans.jsonl" | wc -l)
[ "$changes" -eq $((count * CHANGED)) ] || { echo "bench: expected $((count * CHANGED)) planned upgrades, got $changes" >&2; exit 1; }

vd_run() {
    "$VD_BIN/vd-push" --repo "$work/wheels" <"$work/plans.jsonl" >"$work/pushed.jsonl"
}
# (a) The original way: serial, a new connection per copy and per pip run.
on() { # HOST COMMAND
    ssh -n "${FLEET_SSH[@]}" -p "$FLEET_PORT" "$FLEET_USER@$1" "$2"
}
original_run() {
    local i host venv dir w
    for i in "${!venvs[@]}"; do
        host=${hosts[i]} venv=${venvs[i]}
        dir=$remote/scp-$host/${venv##*/}
        on "$host" "mkdir -p $dir" || return 1
        for w in "${new_wheels[@]}"; do
            scp -q "${FLEET_SSH[@]}" -P "$FLEET_PORT" "$w" "$FLEET_USER@$host:$dir/" </dev/null || return 1
        done
        for w in "${new_wheels[@]}"; do
            on "$host" "$venv/bin/python -m pip install -q --upgrade --no-index --disable-pip-version-check $dir/${w##*/}" || return 1
        done
    done
}
# (b) The floor: the same pip command, no SSH, hosts in parallel.
floor_run() {
    local h i pids=() pid status=0
    for h in "${FLEET_HOSTS[@]}"; do
        (
            for i in "${!venvs[@]}"; do
                [ "${hosts[i]}" = "$h" ] || continue
                "${venvs[i]}/bin/python" -m pip --isolated --disable-pip-version-check --no-input --no-cache-dir \
                    install -q --no-index --no-deps "${new_wheels[@]}" || exit 1
            done
        ) &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do wait "$pid" || status=1; done
    return $status
}
# Every venv holds the new versions, by its dist-info.
check_upgraded() { # WHO
    local v
    for v in "${venvs[@]}"; do
        [ "$(find "$v"/lib/python3*/site-packages -maxdepth 1 -name 'bench_pkg*-1.1.dist-info' | wc -l)" -eq "$CHANGED" ] ||
            { echo "bench: $1 left $v without the new versions" >&2; exit 1; }
    done
}

ta=() tb=() tc=()
for ((i = 0; i < BENCH_RUNS; i++)); do
    reset_venvs
    ta+=("$(bench_time vd_run)")
    if grep -q '"error"' "$work/pushed.jsonl"; then
        echo "bench: vd-push failed:" >&2
        grep '"error"' "$work/pushed.jsonl" | head -3 >&2
        exit 1
    fi
    check_upgraded vd-push
    reset_venvs
    tc+=("$(bench_time floor_run)")
    check_upgraded "the floor (b)"
    if ((i < ORIGINAL_RUNS)); then
        reset_venvs
        tb+=("$(bench_time original_run)")
        check_upgraded "the serial loop (a)"
    fi
    echo "bench: run $((i + 1)): vd-push ${ta[i]}s, floor ${tc[i]}s${tb[i]:+, original ${tb[i]}s}" >&2
done
bench_heading "vd-push: $CHANGED changed wheels to $count venvs on $HOSTS hosts, login $FLEET_USER"
bench_runs_header
bench_runs_row vd-push "${ta[@]}"
# ORIGINAL_RUNS=0 leaves (a) out: its row and ratio say so.
if ((ORIGINAL_RUNS > 0)); then
    bench_runs_row "(a) serial scp + pip install --upgrade per wheel" "${tb[@]}"
else
    echo "| (a) serial scp + pip install --upgrade per wheel | not run | 0 | |"
fi
bench_runs_row "(b) pip install --no-index --no-deps per venv, no SSH" "${tc[@]}"
bench_ratios_header
if ((ORIGINAL_RUNS > 0)); then
    bench_ratio_row "speed-up: (a) / vd-push" "$(bench_median "${tb[@]}")" "$(bench_median "${ta[@]}")" ">=" 5
else
    echo "| speed-up: (a) / vd-push | not measured | >= 5 | |"
fi
bench_ratio_row "vd-push / (b)" "$(bench_median "${ta[@]}")" "$(bench_median "${tc[@]}")" "<=" 1.1
