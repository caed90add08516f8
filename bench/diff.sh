#!/bin/sh
# vd-diff over 1,000 target records with 100 requirements each against a
# repository of 2,000 wheels: median wall time and peak memory of RUNS runs
# (default 5). Every target has its own installed set, so each is resolved
# (the closure, not only the named projects) on its own. A second size
# (10,000 records) shows that memory does not grow with the number of
# targets: records are planned and written one at a time. Then 1,000
# targets of 10 distinct kinds against 10 targets: targets of one kind share
# one resolution, so the ratio should stay under 2.
set -eu
cd "$(dirname "$0")/.."
RUNS=${RUNS:-${BENCH_RUNS:-5}}
PYTHON=${PYTHON:-python3}
VD_DIFF=target/release/vd-diff
VD_ADD=target/release/vd-add
TIME=${TIME:-/usr/bin/time}
[ -x "$VD_DIFF" ] && [ -x "$VD_ADD" ] || cargo build --release --locked --quiet

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$PYTHON" bench/make_diff_fixtures.py "$work" lib/src/remote/freeze.py 2000 10000 100
ls "$work"/dist/*.whl | "$VD_ADD" --repo "$work/wheels" >/dev/null
head -n 1000 "$work/records.jsonl" >"$work/records-1000.jsonl"
echo "repository: $(ls "$work"/wheels/*.whl | wc -l) wheels; requirements: $(grep -vc '^#' "$work/requirements.txt")"

# One run: "seconds peak-KiB" on stdout. Peak RSS from GNU time when
# present, else the high-water mark (VmHWM) in /proc, read by a small Python
# wrapper while the process runs.
measure() {
    input=$1
    if [ -x "$TIME" ]; then
        start=$(date +%s.%N)
        "$TIME" -o "$work/kib" -f %M "$VD_DIFF" --repo "$work/wheels" "$work/requirements.txt" \
            <"$input" >"$work/out.jsonl" 2>/dev/null || true
        end=$(date +%s.%N)
        kib=$(tail -n 1 "$work/kib")
    else
        start=$(date +%s.%N)
        "$PYTHON" - "$VD_DIFF" "$work/wheels" "$work/requirements.txt" "$input" "$work/out.jsonl" >"$work/kib" <<'PY'
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

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

for size in 1000 10000; do
    if [ "$size" = 1000 ]; then input="$work/records-1000.jsonl"; runs=$RUNS; else input="$work/records.jsonl"; runs=1; fi
    : >"$work/times"
    : >"$work/rss"
    i=0
    while [ $i -lt "$runs" ]; do
        set -- $(measure "$input")
        echo "$1" >>"$work/times"
        echo "$2" >>"$work/rss"
        i=$((i + 1))
    done
    lines=$(wc -l <"$work/out.jsonl")
    changes=$(grep -o '"action"' "$work/out.jsonl" | wc -l)
    errors=$(grep -c '"error"' "$work/out.jsonl" || true)
    echo "vd-diff, $size targets x 100 requirements: median $(median <"$work/times") s over $runs run(s), peak RSS $(median <"$work/rss") KiB ($lines records, $changes changes, $errors errors)"
done

# 10 kinds: the first 10 records, each repeated 100 times under other hosts.
head -n 10 "$work/records.jsonl" >"$work/kinds-10.jsonl"
i=0
while [ $i -lt 100 ]; do
    sed "s/\"host\": \"web/\"host\": \"copy$i-web/" "$work/kinds-10.jsonl"
    i=$((i + 1))
done >"$work/kinds-1000.jsonl"
for input in kinds-10 kinds-1000; do
    : >"$work/times"
    i=0
    while [ $i -lt "$RUNS" ]; do
        measure "$work/$input.jsonl" | cut -d ' ' -f 1 >>"$work/times"
        i=$((i + 1))
    done
    median <"$work/times" >"$work/median-$input"
done
ten=$(cat "$work/median-kinds-10")
thousand=$(cat "$work/median-kinds-1000")
echo "vd-diff, 10 kinds of target: 10 targets median $ten s, 1,000 targets median $thousand s, ratio $(awk -v a="$thousand" -v b="$ten" 'BEGIN { printf "%.2f", a / b }') (target: under 2)"
