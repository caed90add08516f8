# Shared by the benchmarks: timing, medians and ratios.
# Sourced, not run.

# Wall time of a command in seconds (fractional), output discarded.
bench_time() {
    local start end
    start=$(date +%s.%N)
    "$@" >/dev/null 2>&1 || { echo "bench: command failed: $*" >&2; return 1; }
    end=$(date +%s.%N)
    echo "$end - $start" | bc -l
}

# Median of the numbers given.
bench_median() {
    printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'
}

# Runs a setup command and then a timed command BENCH_RUNS times, alternating
# with the baseline so both see the same machine load; sets MEDIAN_A, MEDIAN_B.
# usage: bench_pair "setup" "command A" "command B"
bench_pair() {
    local setup="$1" a="$2" b="$3" ta=() tb=() i
    for ((i = 0; i < BENCH_RUNS; i++)); do
        eval "$setup"
        ta+=("$(bench_time bash -c "$a")")
        eval "$setup"
        tb+=("$(bench_time bash -c "$b")")
    done
    MEDIAN_A=$(bench_median "${ta[@]}")
    MEDIAN_B=$(bench_median "${tb[@]}")
}

bench_ratio() {
    echo "scale=2; $1 / $2" | bc -l
}
