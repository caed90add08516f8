# shellcheck shell=bash
# Shared by the benchmarks: the binaries measured, timing, medians, ratios
# and the Markdown every benchmark prints. Sourced, not run; bash only.
#
#   VD_BIN      the folder of the vd binaries measured (default: the
#               release build, target/release); a relative path is taken
#               from the folder the benchmark was started in
#   BENCH_RUNS  how many timed runs each median is of (default 5; RUNS is
#               read too)

bench_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VD_BIN=${VD_BIN:-$bench_root/target/release}
case $VD_BIN in /*) ;; *) VD_BIN=$PWD/$VD_BIN ;; esac
BENCH_RUNS=${BENCH_RUNS:-${RUNS:-5}}
export VD_BIN BENCH_RUNS

# Fail, saying what to do, unless every TOOL named is in VD_BIN.
bench_tools() {
    local tool
    for tool in "$@"; do
        [ -x "$VD_BIN/$tool" ] || { echo "bench: no $VD_BIN/$tool: run make build (or set VD_BIN)" >&2; exit 1; }
    done
}

# Wall time of a command in seconds (fractional), output discarded.
bench_time() {
    local start end
    start=$(date +%s.%N)
    "$@" >/dev/null 2>&1 || { echo "bench: command failed: $*" >&2; return 1; }
    end=$(date +%s.%N)
    awk -v s="$start" -v e="$end" 'BEGIN { printf "%.6f\n", e - s }'
}

# Stop the benchmark, showing the first errors, when the JSON lines in FILE
# (what WHAT wrote) carry an error: bench_fail_on_error FILE WHAT
bench_fail_on_error() {
    if grep -q '"error"' "$1"; then
        echo "bench: $2 failed:" >&2
        grep '"error"' "$1" | head -3 >&2
        exit 1
    fi
}

# Median of the numbers given.
bench_median() {
    printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'
}

# Runs a setup command and then a timed command BENCH_RUNS times, alternating
# with the baseline so both see the same machine load; sets TIMES_A and
# TIMES_B (arrays of seconds) and MEDIAN_A, MEDIAN_B.
# usage: bench_pair "setup" "command A" "command B"
bench_pair() {
    local setup="$1" a="$2" b="$3" i
    TIMES_A=() TIMES_B=()
    for ((i = 0; i < BENCH_RUNS; i++)); do
        eval "$setup"
        TIMES_A+=("$(bench_time bash -c "$a")")
        eval "$setup"
        TIMES_B+=("$(bench_time bash -c "$b")")
    done
    # shellcheck disable=SC2034 # read by the benchmark that called this
    MEDIAN_A=$(bench_median "${TIMES_A[@]}")
    # shellcheck disable=SC2034 # read by the benchmark that called this
    MEDIAN_B=$(bench_median "${TIMES_B[@]}")
}

# A / B to two decimals.
bench_ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f\n", a / b }'
}

# --- Markdown. Every benchmark prints one section: a `###` heading, a line
# on the machine, a table of what was run (median and every run's time),
# and a table of the ratios it is judged by. bench/RESULTS.md is assembled
# from these sections.

# The heading and the machine: bench_heading TITLE
bench_heading() {
    printf '### %s\n\n' "$1"
    printf '%s cores, load average %s at the end; medians of BENCH_RUNS=%s runs unless a row says otherwise.\n\n' \
        "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)" "$BENCH_RUNS"
}

bench_runs_header() {
    echo "| what | median (s) | runs | each run (s) |"
    echo "|---|---:|---:|---|"
}

# One row of the runs table: bench_runs_row WHAT SECONDS... (a `|` in WHAT
# is escaped for Markdown)
bench_runs_row() {
    local what=$1
    shift
    printf '| %s | %.3f | %d | %s |\n' "${what//|/\\|}" "$(bench_median "$@")" $# \
        "$(printf '%.3f ' "$@" | sed 's/ $//')"
}

bench_ratios_header() {
    echo
    echo "| ratio | value | target | |"
    echo "|---|---:|---:|---|"
}

# One row of the ratios table: bench_ratio_row WHAT A B [OP LIMIT], where
# the value is A / B and, with OP (<= or >=) and LIMIT, the target is met
# when `value OP LIMIT` holds. A `|` in WHAT is escaped for Markdown.
bench_ratio_row() {
    local value target='' verdict=''
    value=$(bench_ratio "$2" "$3")
    if [ $# -ge 5 ]; then
        target="$4 $5" verdict=missed
        awk -v v="$value" -v l="$5" "BEGIN { exit !(v $4 l) }" && verdict=met
    fi
    printf '| %s | %s | %s | %s |\n' "${1//|/\\|}" "$value" "$target" "$verdict"
}
