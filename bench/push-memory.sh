#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# vd-push's peak memory over SIZES (default "1000 10000") records with empty
# plans, each on its own host, each carrying a freeze's facts (60 installed
# packages): no host is reached, so this measures what vd-push holds per
# record read. Memory must stay flat with the number of records: the fleet
# reads only a window ahead of the work, and a host that never connected is
# not kept. Needs GNU time (/usr/bin/time) for the peak RSS.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=lib.sh
. "$here/lib.sh"
cd "$here/.."
SIZES=${SIZES:-1000 10000}
PYTHON=${PYTHON:-python3}
TIME=${TIME:-/usr/bin/time}
bench_tools vd-push
[ -x "$TIME" ] || { echo "bench: $TIME is needed for the peak RSS (apt-get install time)" >&2; exit 1; }
read -r -a sizes <<<"$SIZES"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/wheels"

rows=() first_kib='' first_size='' last_kib='' last_size=''
for size in "${sizes[@]}"; do
    "$PYTHON" - "$size" >"$work/plans.jsonl" <<'PY'
import json, sys
installed = {f"package-{i}": f"{i}.0.{i}" for i in range(60)}
for i in range(int(sys.argv[1])):
    print(json.dumps({
        "host": f"10.{i // 62500}.{i // 250 % 250}.{i % 250}", "user": "deploy",
        "venv": f"/srv/app{i}/venv", "venv_exists": True, "installed": installed,
        "python": {"version": "3.11.4", "implementation": "cpython", "venv": True},
        "markers": {"python_version": "3.11", "sys_platform": "linux"}, "plan": [],
    }))
PY
    kibs=() times=()
    for ((i = 0; i < BENCH_RUNS; i++)); do
        start=$(date +%s.%N)
        "$TIME" -o "$work/kib" -f %M "$VD_BIN/vd-push" --repo "$work/wheels" \
            <"$work/plans.jsonl" >"$work/out.jsonl"
        end=$(date +%s.%N)
        kibs+=("$(tail -n 1 "$work/kib")")
        times+=("$(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.3f", e - s }')")
    done
    lines=$(wc -l <"$work/out.jsonl")
    [ "$lines" -eq "$size" ] || { echo "bench: vd-push wrote $lines records for $size" >&2; exit 1; }
    kib=$(bench_median "${kibs[@]}")
    rows+=("$(printf '| %s | %.3f | %s |' "$size" "$(bench_median "${times[@]}")" "$kib")")
    if [ -z "$first_size" ]; then first_size=$size first_kib=$kib; fi
    last_size=$size last_kib=$kib
done

bench_heading "vd-push: peak memory over empty plans, one host each"
echo "| records | median (s) | peak RSS (KiB) |"
echo "|---:|---:|---:|"
printf '%s\n' "${rows[@]}"
if [ "$last_size" != "$first_size" ]; then
    bench_ratios_header
    bench_ratio_row "peak RSS, $last_size / $first_size records (flat = 1)" "$last_kib" "$first_kib" '<=' 1.5
fi
