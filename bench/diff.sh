#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# vd-diff over target records with 100 requirements each (REQUIREMENTS)
# against a repository of 2,000 wheels (REPO_WHEELS): median wall time and peak
# memory at each of SIZES targets (default "1000 10000"), BENCH_RUNS runs at
# the first size and one at the others. Every target has its own installed
# set, so each is resolved (the closure, not only the named projects) on its
# own. The larger sizes show that memory does not grow with the number of
# targets (records are planned and written one at a time) and that time
# grows no faster than linearly. Then 1,000 targets of 10 distinct kinds
# against 10 targets: targets of one kind share one resolution.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=lib.sh
. "$here/lib.sh"
cd "$here/.."
REPO_WHEELS=${REPO_WHEELS:-2000}
SIZES=${SIZES:-1000 10000}
REQUIREMENTS=${REQUIREMENTS:-100}
PYTHON=${PYTHON:-python3}
TIME=${TIME:-/usr/bin/time}
bench_tools vd-add vd-diff
read -r -a sizes <<<"$SIZES"
largest=$(printf '%s\n' "${sizes[@]}" | sort -n | tail -n 1)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$PYTHON" bench/make_diff_fixtures.py "$work" lib/src/remote/freeze.py "$REPO_WHEELS" "$largest" "$REQUIREMENTS"
printf '%s\n' "$work"/dist/*.whl | "$VD_BIN/vd-add" --repo "$work/wheels" >/dev/null
wheels=$(find "$work/wheels" -name '*.whl' | wc -l)

# One run: "seconds peak-KiB" on stdout. Peak RSS from GNU time when
# present, else the high-water mark (VmHWM) in /proc, read by a small Python
# wrapper while the process runs.
measure() {
    local input=$1 start end kib
    if [ -x "$TIME" ]; then
        start=$(date +%s.%N)
        "$TIME" -o "$work/kib" -f %M "$VD_BIN/vd-diff" --repo "$work/wheels" "$work/requirements.txt" \
            <"$input" >"$work/out.jsonl" 2>/dev/null || true
        end=$(date +%s.%N)
        kib=$(tail -n 1 "$work/kib")
    else
        start=$(date +%s.%N)
        "$PYTHON" - "$VD_BIN/vd-diff" "$work/wheels" "$work/requirements.txt" "$input" "$work/out.jsonl" >"$work/kib" <<'PY'
import subprocess, sys, time
exe, repo, req, src, dst = sys.argv[1:]
peak = 0
with open(src) as i, open(dst, "w") as o:
    proc = subprocess.Popen([exe, "--repo", repo, req], stdin=i, stdout=o, stderr=subprocess.DEVNULL)
    while proc.poll() is None:
        try:
            with open(f"/proc/{proc.pid}/status") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]))
        except OSError:
            pass
        time.sleep(0.005)
print(peak)
PY
        end=$(date +%s.%N)
        kib=$(cat "$work/kib")
    fi
    echo "$start $end $kib" | awk '{ printf "%.3f %d\n", $2 - $1, $3 }'
}

rows=() first_time='' first_kib='' first_size='' last_time='' last_kib='' last_size=''
for size in "${sizes[@]}"; do
    head -n "$size" "$work/records.jsonl" >"$work/records-$size.jsonl"
    runs=1
    [ "$size" = "${sizes[0]}" ] && runs=$BENCH_RUNS
    times=() kibs=()
    for ((i = 0; i < runs; i++)); do
        read -r t kib < <(measure "$work/records-$size.jsonl")
        times+=("$t") kibs+=("$kib")
    done
    lines=$(wc -l <"$work/out.jsonl")
    [ "$lines" -eq "$size" ] || { echo "bench: vd-diff wrote $lines records for $size targets" >&2; exit 1; }
    errors=$(grep -c '"error"' "$work/out.jsonl" || true)
    [ "$errors" -eq 0 ] || { echo "bench: vd-diff failed:" >&2; grep -m 3 '"error"' "$work/out.jsonl" >&2; exit 1; }
    changes=$(grep -o '"action"' "$work/out.jsonl" | wc -l)
    median=$(bench_median "${times[@]}")
    kib=$(bench_median "${kibs[@]}")
    rows+=("$(printf '| %s | %.3f | %d | %s | %s | %s |' "$size" "$median" "$runs" \
        "$(printf '%s ' "${times[@]}" | sed 's/ $//')" "$kib" "$changes")")
    if [ -z "$first_size" ]; then first_size=$size first_time=$median first_kib=$kib; fi
    last_size=$size last_time=$median last_kib=$kib
done

bench_heading "vd-diff: $REQUIREMENTS requirements per target against $wheels wheels"
echo "| targets | median (s) | runs | each run (s) | peak RSS (KiB) | changes planned |"
echo "|---:|---:|---:|---|---:|---:|"
printf '%s\n' "${rows[@]}"
if [ "$last_size" != "$first_size" ]; then
    bench_ratios_header
    bench_ratio_row "time per target, $last_size / $first_size targets (linear = 1)" \
        "$(awk -v t="$last_time" -v n="$last_size" 'BEGIN { print t / n }')" \
        "$(awk -v t="$first_time" -v n="$first_size" 'BEGIN { print t / n }')"
    bench_ratio_row "peak RSS, $last_size / $first_size targets (flat = 1)" "$last_kib" "$first_kib"
fi

# 10 kinds: the first 10 records, each repeated 100 times under other hosts.
head -n 10 "$work/records.jsonl" >"$work/kinds-10.jsonl"
for ((i = 0; i < 100; i++)); do
    sed "s/\"host\": \"web/\"host\": \"copy$i-web/" "$work/kinds-10.jsonl"
done >"$work/kinds-1000.jsonl"
# Alternating run by run, so both see the same load.
kinds10=() kinds1000=()
for ((i = 0; i < BENCH_RUNS; i++)); do
    read -r t _ < <(measure "$work/kinds-10.jsonl")
    kinds10+=("$t")
    read -r t _ < <(measure "$work/kinds-1000.jsonl")
    kinds1000+=("$t")
done
kind_times=("$(bench_median "${kinds10[@]}")" "$(bench_median "${kinds1000[@]}")")
echo
bench_runs_header
bench_runs_row "10 targets (10 kinds)" "${kinds10[@]}"
bench_runs_row "1,000 targets of the same 10 kinds" "${kinds1000[@]}"
bench_ratios_header
bench_ratio_row "1,000 targets of 10 kinds / 10 targets" "${kind_times[1]}" "${kind_times[0]}" '<' 2
