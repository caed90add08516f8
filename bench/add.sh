#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# vd-add on WHEELS wheels (default 500) against the floor of the same work
# by hand: cp plus sha256sum of every file. vd-add also unzips and hashes
# every member against RECORD, fsyncs, and appends to the log, so some ratio
# above 1 is expected; the target is within 3x.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=lib.sh
. "$here/lib.sh"
WHEELS=${WHEELS:-500}
bench_tools vd-add
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 "$here/make_wheels.py" "$work/src" "$WHEELS"
bench_pair "rm -rf '$work/repo' '$work/copy'; mkdir -p '$work/copy'; sync" \
    "ls '$work'/src/*.whl | '$VD_BIN/vd-add' --repo '$work/repo' >/dev/null" \
    "cp '$work'/src/*.whl '$work/copy/' && sha256sum '$work'/copy/*.whl >/dev/null"
bench_heading "vd-add: $WHEELS wheels into a new repository"
bench_runs_header
bench_runs_row vd-add "${TIMES_A[@]}"
bench_runs_row "cp + sha256sum" "${TIMES_B[@]}"
bench_ratios_header
bench_ratio_row "vd-add / (cp + sha256sum)" "$MEDIAN_A" "$MEDIAN_B" "<=" 3
