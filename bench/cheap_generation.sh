#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# The safe mode against the fast one (issue 30): a one-package upgrade
# (redis 8.1.0 to 8.2.0) pushed
#  (a) into a new generation of a target with `generations` (a copy of the
#      active generation with only the change installed, and the switch);
#  (b) in place, into a plain venv holding the same packages.
# Both targets are local (`via = local`: no SSH, as the issue measured) and
# hold a real closure of about 25 packages: Django, Django REST framework,
# Celery with Redis, Pillow, gunicorn, whitenoise and their dependencies,
# fetched with `pip download` into target/bench once. Then the same with 75
# small made-up wheels more (bench/make_wheels.py): about 100 packages.
# Before each timed run both targets are put back (not timed): the
# generation target on generation 1 with the newer ones removed, the plain
# venv to redis 8.1.0. The two sides alternate, run by run.
# Then, once per size, the full build the copy replaces: the same push
# with the copy refused (generation 1's .vd-built mark taken away), which
# is what every push of a generation cost before.
# Target: (a) within 2x of (b) for the 25 packages. Medians of BENCH_RUNS.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=lib.sh
. "$here/lib.sh"
bench_tools vd-add vd-targets vd-freeze vd-diff vd-push
PYTHON=${PYTHON:-python3}

store=$bench_root/target/bench/cheapgen
mkdir -p "$store/wheels" "$store/old"
if ! [ -e "$store/.fetched" ]; then
    "$PYTHON" -m pip download -q --only-binary=:all: -d "$store/wheels" \
        "Django>=4.2,<6" djangorestframework "celery[redis]" redis Pillow gunicorn whitenoise
    "$PYTHON" -m pip download -q --only-binary=:all: --no-deps -d "$store/old" "redis==8.1.0"
    touch "$store/.fetched"
fi

work=$(mktemp -d)
trap '[ -n "${BENCH_KEEP:-}" ] || rm -rf "$work"' EXIT
export HOME=$work

# setup_size NAME EXTRA: a repository of the closure, redis 8.1.0 and EXTRA
# made-up wheels; the two targets made from it holding redis 8.1.0; the
# plan of each to redis 8.2.0 (in $work/NAME).
setup_size() {
    local extra=$2 w=$work/$1
    mkdir -p "$w/dist"
    cp "$store"/wheels/*.whl "$store"/old/*.whl "$w/dist/"
    if [ "$extra" -gt 0 ]; then "$PYTHON" "$here/make_wheels.py" "$w/dist" "$extra" >/dev/null; fi
    "$VD_BIN/vd-add" --repo "$w/repo" "$w"/dist/*.whl >/dev/null
    for whl in "$w"/dist/*.whl; do basename "$whl" | cut -d- -f1; done | sort -u |
        grep -vx redis >"$w/rest.txt"
    { cat "$w/rest.txt"; echo "redis==8.1.0"; } >"$w/old.txt"
    { cat "$w/rest.txt"; echo "redis==8.2.0"; } >"$w/new.txt"
    printf '{"host":"localhost","via":"local","venv":"%s","python":"%s","generations":3}\n' \
        "$w/gen" "$(command -v "$PYTHON")" >"$w/gen.jsonl"
    printf '{"host":"localhost","via":"local","venv":"%s","python":"%s"}\n' \
        "$w/plain" "$(command -v "$PYTHON")" >"$w/plain.jsonl"
    for t in gen plain; do
        plan_to "$w" "$t" old.txt | "$VD_BIN/vd-push" --repo "$w/repo" --create >"$w/first.jsonl"
        bench_fail_on_error "$w/first.jsonl" "the first push to $t"
        plan_to "$w" "$t" new.txt >"$w/$t.plan"
    done
    packages=$(grep -c . "$w/old.txt")
}

plan_to() { # WORK TARGET REQUIREMENTS
    "$VD_BIN/vd-targets" --inventory "$1/$2.jsonl" | "$VD_BIN/vd-freeze" |
        "$VD_BIN/vd-diff" --repo "$1/repo" "$1/$3"
}

reset_gen() { # WORK
    local n
    for n in "$1"/gen.generations/*; do
        case ${n##*/} in 1 | .vd-lock) ;; *) rm -rf "$n" ;; esac
    done
    ln -sfn gen.generations/1 "$1/gen.reset" && mv -T "$1/gen.reset" "$1/gen"
}

reset_plain() { # WORK
    "$1/plain/bin/python" -m pip install -q --no-index --no-deps --disable-pip-version-check \
        "$1"/dist/redis-8.1.0-*.whl
}

push_plan() { # WORK TARGET
    "$VD_BIN/vd-push" --repo "$1/repo" <"$1/$2.plan" >"$1/$2.out"
}

# measure NAME: the alternating runs, then the full build once
measure() {
    local w=$work/$1 i way
    ta=() tb=()
    for ((i = 0; i < BENCH_RUNS; i++)); do
        reset_gen "$w"
        ta+=("$(bench_time push_plan "$w" gen)")
        bench_fail_on_error "$w/gen.out" "the generation push"
        way=$(grep -o '"built":{"way":"[a-z]*"' "$w/gen.out" || true)
        [ "$way" = '"built":{"way":"copy"' ] || { echo "bench: not a copy: $(grep -o '"built":{[^}]*}' "$w/gen.out")" >&2; exit 1; }
        reset_plain "$w"
        tb+=("$(bench_time push_plan "$w" plain)")
        bench_fail_on_error "$w/plain.out" "the in-place push"
        echo "bench: $1 run $((i + 1)): generation ${ta[i]}s, in place ${tb[i]}s" >&2
    done
    reset_gen "$w"
    mv "$w/gen.generations/1/.vd-built" "$w/vd-built"
    tf=$(bench_time push_plan "$w" gen)
    bench_fail_on_error "$w/gen.out" "the full build"
    grep -q '"built":{"way":"full"' "$w/gen.out" || { echo "bench: not a full build" >&2; exit 1; }
    mv "$w/vd-built" "$w/gen.generations/1/.vd-built"
}

setup_size small 0
small_packages=$packages
measure small
small_a=("${ta[@]}") small_b=("${tb[@]}") small_full=$tf
setup_size big 75
big_packages=$packages
measure big
big_a=("${ta[@]}") big_b=("${tb[@]}") big_full=$tf

bench_heading "A one-package upgrade: a new generation (a copy) against in place, local targets"
bench_runs_header
bench_runs_row "(a) $small_packages packages: new generation, copied, and switched" "${small_a[@]}"
bench_runs_row "(b) $small_packages packages: in place" "${small_b[@]}"
bench_runs_row "$small_packages packages: new generation built in full (one run)" "$small_full"
bench_runs_row "(a) $big_packages packages: new generation, copied, and switched" "${big_a[@]}"
bench_runs_row "(b) $big_packages packages: in place" "${big_b[@]}"
bench_runs_row "$big_packages packages: new generation built in full (one run)" "$big_full"
bench_ratios_header
bench_ratio_row "(a) / (b), $small_packages packages" "$(bench_median "${small_a[@]}")" \
    "$(bench_median "${small_b[@]}")" "<=" 2
bench_ratio_row "(a) / (b), $big_packages packages" "$(bench_median "${big_a[@]}")" \
    "$(bench_median "${big_b[@]}")"
bench_ratio_row "full build / (b), $small_packages packages" "$small_full" \
    "$(bench_median "${small_b[@]}")"
bench_ratio_row "full build / (b), $big_packages packages" "$big_full" \
    "$(bench_median "${big_b[@]}")"
