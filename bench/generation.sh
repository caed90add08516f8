#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# vd-push to a target with generations: building a new generation of the
# demo shop (examples/demo-shop, Django and its dependencies: four wheels)
# and switching to it, against
#  (b) the floor: what the build cannot do without, a fresh venv made with
#      `python -m venv` (with pip, as every generation has) and one bare
#      `pip install --no-index --no-deps` of the same wheels into it, run
#      directly without SSH.
# vd-push's side adds the SSH session, the cache listing, the freeze and
# fingerprint of the active generation, the freeze and check of the new one,
# and the switch. Before each timed run the target is put back on generation
# 1 and the newer generations removed (the floor's venv is removed), so every
# run builds a whole generation. Then the switch itself: vd-rollback end to
# end (SSH included), and the rename alone (a new link renamed over the old
# one, as generation.sh and switch.sh do it), in milliseconds.
# Target: vd-push within 1.3x of (b). Medians of BENCH_RUNS runs.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=lib.sh
. "$here/lib.sh"
# shellcheck source=fleet.sh
. "$here/fleet.sh"
bench_tools vd-add vd-targets vd-freeze vd-diff vd-push vd-rollback
fleet_require python3=python3

trap fleet_stop EXIT
fleet_start 1
work=$FLEET_DIR
remote=$work/remote
mkdir -p "$remote" "$work/dist"
chown "$FLEET_USER" "$remote" 2>/dev/null || true

# The demo's wheels: Django's fetched once (shared with `make demo`), the
# shop built here.
cache=$bench_root/target/demo-cache
mkdir -p "$cache"
[ -x "$cache/pip/bin/pip" ] || "$FLEET_PYTHON" -m venv "$cache/pip"
pip=("$cache/pip/bin/python" -m pip --disable-pip-version-check)
if ! ls "$cache"/[Dd]jango-*.whl >/dev/null 2>&1; then
    "${pip[@]}" download -q --only-binary=:all: --python-version 3.10 -d "$cache" "Django>=4.2,<6"
fi
cp "$cache"/*.whl "$work/dist/"
"${pip[@]}" wheel -q --no-deps -w "$work/dist" "$bench_root/examples/demo-shop"
"$VD_BIN/vd-add" --repo "$work/wheels" "$work"/dist/*.whl >/dev/null
wheels=("$work"/wheels/*.whl)
for whl in "${wheels[@]}"; do basename "$whl" | cut -d- -f1; done >"$work/requirements.txt"
echo sqlparse >"$work/first.txt"

venv=$remote/shop
gens=$venv.generations
echo "host,port,user,venv,python,generations
${FLEET_HOSTS[0]},$FLEET_PORT,$FLEET_USER,$venv,$FLEET_PYTHON,3" >"$work/targets.csv"
plan() { # REQUIREMENTS
    "$VD_BIN/vd-targets" --inventory "$work/targets.csv" | "$VD_BIN/vd-freeze" |
        "$VD_BIN/vd-diff" --repo "$work/wheels" "$1"
}
# Generation 1 holds one package; the plan measured installs the rest,
# so a build installs every wheel of the shop.
plan "$work/first.txt" | "$VD_BIN/vd-push" --repo "$work/wheels" --create >"$work/first.jsonl"
bench_fail_on_error "$work/first.jsonl" "the first generation"
plan "$work/requirements.txt" >"$work/plan.jsonl"

# Back on generation 1, the newer ones gone (not timed).
reset_target() {
    local n
    for n in "$gens"/*; do
        case ${n##*/} in 1 | .vd-lock) ;; *) rm -rf "$n" ;; esac
    done
    ln -sfn shop.generations/1 "$venv.reset" && mv -T "$venv.reset" "$venv"
}
vd_run() {
    "$VD_BIN/vd-push" --repo "$work/wheels" <"$work/plan.jsonl" >"$work/pushed.jsonl"
}
floor_run() {
    "$FLEET_PYTHON" -m venv "$work/fresh" &&
        "$work/fresh/bin/python" -m pip --isolated --disable-pip-version-check --no-input \
            --no-cache-dir install -q --no-index --no-deps "${wheels[@]}"
}

ta=() tb=()
for ((i = 0; i < BENCH_RUNS; i++)); do
    reset_target
    ta+=("$(bench_time vd_run)")
    bench_fail_on_error "$work/pushed.jsonl" vd-push
    [ "$(readlink "$venv")" = shop.generations/2 ] || { echo "bench: vd-push did not switch" >&2; exit 1; }
    rm -rf "$work/fresh"
    tb+=("$(bench_time floor_run)")
    echo "bench: run $((i + 1)): vd-push ${ta[i]}s, floor ${tb[i]}s" >&2
done

# The switch: vd-rollback from generation 2 to 1, end to end.
rollback_run() {
    "$VD_BIN/vd-targets" --inventory "$work/targets.csv" |
        "$VD_BIN/vd-rollback" --repo "$work/wheels" --to 1 >"$work/rolled.jsonl"
}
tc=()
for ((i = 0; i < BENCH_RUNS; i++)); do
    ln -sfn shop.generations/2 "$venv.reset" && mv -T "$venv.reset" "$venv"
    tc+=("$(bench_time rollback_run)")
    bench_fail_on_error "$work/rolled.jsonl" vd-rollback
done
# The rename alone, 1000 times.
renames() {
    local k
    for ((k = 0; k < 1000; k++)); do
        ln -s "shop.generations/$((k % 2 + 1))" "$venv.new" && mv -T "$venv.new" "$venv"
    done
}
rename_ms=$(bench_time renames | awk '{ printf "%.3f", $1 }')

bench_heading "vd-push with generations: a new generation of the demo shop (${#wheels[@]} wheels), login $FLEET_USER"
bench_runs_header
bench_runs_row "vd-push: build generation 2 and switch to it" "${ta[@]}"
bench_runs_row "(b) python -m venv + pip install --no-index --no-deps, no SSH" "${tb[@]}"
bench_runs_row "vd-rollback: switch back to generation 1 (SSH included)" "${tc[@]}"
echo
echo "The rename alone (ln -s + mv -T, a rename(2)): $rename_ms ms per switch, from 1000 switches."
bench_ratios_header
bench_ratio_row "vd-push / (b)" "$(bench_median "${ta[@]}")" "$(bench_median "${tb[@]}")" "<=" 1.3
