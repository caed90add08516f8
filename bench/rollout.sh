#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# vd-rollout's own cost: a rollout of TARGETS local targets (default 20) in 4
# waves with no failure, against
#  (b) the same four waves run by hand one after another: the input cut into
#      four files, the same COMMAND run on each in turn.
# COMMAND is `vd-freeze | vd-reload --always` over venvs on this machine
# (`via = local`, made with `python3 -m venv --without-pip`; reload and check
# are `true`): real tools that start, read the venvs and write records, but
# little enough work that vd-rollout's share (its start, the records through
# it and back, the matching, the release log's rollout events) shows.
# No SSH: a remote COMMAND only makes both sides slower alike.
# Target: vd-rollout within 1.2x of (b). Medians of BENCH_RUNS runs.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=lib.sh
. "$here/lib.sh"
bench_tools vd-freeze vd-reload vd-rollout
TARGETS=${TARGETS:-20}
wave=$((TARGETS / 4))
[ "$wave" -ge 1 ] || { echo "bench: TARGETS must be 4 or more" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/wheels"
export VD_REPO=$work/wheels HOME=$work
for ((i = 1; i <= TARGETS; i++)); do
    python3 -m venv --without-pip "$work/t$i"
    printf '{"host":"localhost","via":"local","venv":"%s","reload":"true","check":"true"}\n' \
        "$work/t$i"
done >"$work/targets.jsonl"
split -l "$wave" -d "$work/targets.jsonl" "$work/wave."

command="$VD_BIN/vd-freeze | $VD_BIN/vd-reload --always"
rollout_run() {
    "$VD_BIN/vd-rollout" --wave "$wave" -- "$command" <"$work/targets.jsonl" >"$work/rollout.jsonl"
}
by_hand_run() {
    local w
    for w in "$work"/wave.*; do sh -c "$command" <"$w"; done >"$work/by-hand.jsonl"
}
export command work wave
export -f rollout_run by_hand_run
bench_pair ":" rollout_run by_hand_run
for out in rollout by-hand; do
    if grep -q '"error"' "$work/$out.jsonl" || [ "$(grep -c '"checked":true' "$work/$out.jsonl")" -ne "$TARGETS" ]; then
        echo "bench: $out did not release every target" >&2
        exit 1
    fi
done

bench_heading "vd-rollout: $TARGETS local targets in 4 waves, no failure"
bench_runs_header
bench_runs_row "vd-rollout --wave $wave -- 'vd-freeze | vd-reload --always'" "${TIMES_A[@]}"
bench_runs_row "(b) the same 4 waves by hand, one after another" "${TIMES_B[@]}"
bench_ratios_header
bench_ratio_row "vd-rollout / (b)" "$MEDIAN_A" "$MEDIAN_B" "<=" 1.2
