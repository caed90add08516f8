#!/usr/bin/env bash
# vd-add on 500 wheels against the floor of the same work by hand: cp plus
# sha256sum of every file. vd-add also unzips and hashes every member against
# RECORD, fsyncs, and appends to the log, so some ratio above 1 is expected;
# the target is within 3x.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/lib.sh"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 "$here/make_wheels.py" "$work/src" 500
bench_pair "rm -rf '$work/repo' '$work/copy'; mkdir -p '$work/copy'; sync" \
    "ls '$work'/src/*.whl | '$VD_BIN/vd-add' --repo '$work/repo' >/dev/null" \
    "cp '$work'/src/*.whl '$work/copy/' && sha256sum '$work'/copy/*.whl >/dev/null"
echo "### vd-add: 500 wheels into a new repository"
echo
echo "| what | median of $BENCH_RUNS (s) |"
echo "|---|---|"
echo "| vd-add | $MEDIAN_A |"
echo "| cp + sha256sum | $MEDIAN_B |"
echo
echo "ratio vd-add / (cp + sha256sum): $(bench_ratio "$MEDIAN_A" "$MEDIAN_B") (target: at most 3)"
