#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# vd against its peers, side by side in one run, on a loopback fleet: HOSTS
# hosts (one sshd on 127.0.0.2 and up, see bench/fleet.sh), real venvs, a
# repository of 2 x PROJECTS wheels (every project at 1.0 and 1.1).
#
# Workloads:
#   W1  drift check, nothing to change: vd-targets | vd-freeze | vd-diff;
#       at each of SIZES targets (scale), with time and peak memory
#   W2  sync: CHANGED of the PROJECTS wheels are upgraded on every target,
#       through vd-push; SYNC_PER_HOST venvs per host, reset before each run
#   W3  the same again once everything is in sync (a no-op push)
#   L   W1 behind a proxy that adds a round-trip time, and the round trips
#       each tool waits for per target
# Peers:
#   (a) the original tool's way: a serial OpenSSH loop, `pip freeze` per
#       target, scp of the missing wheels and one `pip install --upgrade`
#       per wheel
#   (b) Ansible (ansible-core from PyPI, in its own venv under target/bench):
#       the pip module in check mode with the pinned names for W1; copy of
#       the wheels and pip with --no-index --find-links for W2 and W3;
#       forks = HOSTS, pipelining on, SSH connections not kept across runs
#   (c) the floor, the same work with no SSH and no tool: a python start
#       and a read of installed metadata per venv for W1 and W3, a bare
#       `pip install --no-index --no-deps` per venv for W2; HOSTS at a time
#   (d) the network floor for W1: OpenSSH's `ssh HOST true` to every host
#       at once, a login and a command per host, nothing read
# Every venv holds what a Django site's would: the PROJECTS projects, and
# Django's closure (Django, asgiref, sqlparse: downloaded once from PyPI).
#
# Prints Markdown on stdout, progress on stderr. Medians of RUNS runs, but
# to keep a whole `make bench` near 15 minutes on 2 cores, the slowest cells
# get fewer (each cell says how many runs it is the median of): SLOW_RUNS
# for (a) and Ansible at 100 targets, in W2/W3 and behind the proxy (each
# of their runs takes a minute or two there), BIG_RUNS for vd and the floor
# above PEERS_MAX targets, where (a) and Ansible are not run at all (they
# would take 10 to 20 minutes a run). Exits non-zero, saying why, when any
# measured command fails or gives a wrong answer.
#
# Run just this one: make build && bench/run peers (or bench/peers.sh).
# W1 on a hundred hosts (sshd's MaxStartups and MaxSessions are raised in
# bench/fleet.sh): HOSTS=100 SIZES="100 1000" PARTS=w1 BIG_RUNS=5 bench/peers.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=lib.sh
. "$here/lib.sh"
# shellcheck source=fleet.sh
. "$here/fleet.sh"
# shellcheck source=ansible.sh
. "$here/ansible.sh"
cd "$here/.."

RUNS=$BENCH_RUNS
SLOW_RUNS=${SLOW_RUNS:-1}
BIG_RUNS=${BIG_RUNS:-1}
LATENCY_RUNS=${LATENCY_RUNS:-$RUNS}    # vd behind the proxy
HOSTS=${HOSTS:-10}
SIZES=${SIZES:-10 100 1000}
PEERS_MAX=${PEERS_MAX:-100}
SYNC_PER_HOST=${SYNC_PER_HOST:-2}
LATENCY_PER_HOST=${LATENCY_PER_HOST:-4}
ONE_WAY_MS=${ONE_WAY_MS:-25}
PARTS=${PARTS:-w1 sync latency}       # which sections to run
PROJECTS=20
CHANGED=10
ANSIBLE_CORE=${ANSIBLE_CORE:-2.19.14}
DJANGO=${DJANGO:-django>=5.2,<5.3}
TIME=/usr/bin/time

fail() { echo "bench: $*" >&2; exit 1; }
progress() { echo "peers: $*" >&2; }

bench_tools vd-add vd-targets vd-freeze vd-diff
# GNU time measures peak memory.
fleet_require "$TIME=time" bc=bc
for size in $SIZES; do
    [ $((size % HOSTS)) -eq 0 ] || fail "$size targets do not spread evenly on $HOSTS hosts"
done
# vd-push comes from its own branch; until it is here, W2 and W3 are not
# measured for vd (and say so), everything else is.
have_push=false
[ -x "$VD_BIN/vd-push" ] && have_push=true

fleet_user
pyver=$("$FLEET_PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
cache=$PWD/target/bench

# Ansible in its own venv, installed once.
ansible_venv=$cache/ansible-core-$ANSIBLE_CORE
ansible_install "$ansible_venv" "$ANSIBLE_CORE" || exit 1

proxy_pid=
proxy_stop() { [ -n "${proxy_pid:-}" ] && kill "$proxy_pid" 2>/dev/null; proxy_pid=; return 0; }
trap 'proxy_stop; fleet_stop' EXIT
fleet_start "$HOSTS"
work=$FLEET_DIR
mkdir -p "$work/t" "$work/m" "$work/trips"

# Wheels, repository, requirements. W1 pins every project at 1.0, as
# installed; W2 pins the first CHANGED at 1.1.
python3 bench/make_wheels.py "$work/dist" $((PROJECTS * 2)) 2
"$VD_BIN/vd-add" --repo "$work/repo" "$work"/dist/*.whl >/dev/null
pins() { # CHANGED_COUNT: the pinned requirements, one a line
    local i
    for i in $(seq 0 $((PROJECTS - 1))); do
        printf 'bench-pkg-%04d==1.%d\n' "$i" $((i < $1 ? 1 : 0))
    done | LC_ALL=C sort
}
pins 0 >"$work/w1.txt"
pins $CHANGED >"$work/w2.txt"
wheel_of() { # PIN: its wheel's file name
    local name=${1%%==*}
    echo "${name//-/_}-${1##*==}-py3-none-any.whl"
}
mkdir -p "$work/wanted"
while read -r pin; do cp "$work/dist/$(wheel_of "$pin")" "$work/wanted/"; done <"$work/w2.txt"
json_list() { python3 -c 'import json, sys; print(json.dumps([l.strip() for l in open(sys.argv[1]) if l.strip()]))' "$1"; }
echo "{\"pins\": $(json_list "$work/w1.txt")}" >"$work/pins-w1.json"
echo "{\"pins\": $(json_list "$work/w2.txt")}" >"$work/pins-w2.json"

# W1 venvs: the largest size's worth, cached; every one has pip (the serial
# loop and Ansible need it) and the PROJECTS wheels at 1.0.
latency_count=$((HOSTS * LATENCY_PER_HOST))
max_size=$latency_count
for size in $SIZES; do [ "$size" -gt "$max_size" ] && max_size=$size; done
w1_venvs=$cache/peers-venvs-$pyver-$(echo "$FLEET_PYTHON" | tr / _)-p$PROJECTS-django
# By name from --find-links, as from an index: `pip freeze` then says
# name==version, where a wheel installed by its path would be name @ file:.
mapfile -t w1_pins <"$work/w1.txt"
django_wheels=$cache/django-wheels-$pyver
if [ ! -e "$django_wheels/.ready" ]; then
    progress "downloading $DJANGO and its dependencies into $django_wheels"
    rm -rf "$django_wheels"
    "$FLEET_PYTHON" -m pip download --quiet --disable-pip-version-check --only-binary :all: \
        -d "$django_wheels" "$DJANGO" || fail "could not download $DJANGO from PyPI"
    touch "$django_wheels/.ready"
fi
fleet_venvs "$w1_venvs" "$max_size" --find-links "$work/dist" --find-links "$django_wheels" \
    "${w1_pins[@]}" "$DJANGO"
template_site=$(echo "$w1_venvs"/template/lib/python3*/site-packages)

# W2/W3 venvs: copies (they change), owned by the login user, reset to all
# PROJECTS at 1.0 before each W2 run. Wheels the peers upload land in
# $work/uploads/PEER/HOST, also emptied by the reset.
sync_count=$((HOSTS * SYNC_PER_HOST))
sync_venvs=()
for i in $(seq 1 $sync_count); do
    fleet_clone_venv "$w1_venvs/template" "$work/sync/v$i" copy
    chown -R "$FLEET_USER" "$work/sync/v$i"
    sync_venvs+=("$work/sync/v$i")
done
sync_reset() {
    local h
    fleet_reset_packages "$template_site" bench_pkg "${sync_venvs[@]}"
    rm -rf "$work/uploads"
    for h in "${FLEET_HOSTS[@]}"; do mkdir -p "$work/uploads/serial/$h" "$work/uploads/ansible/$h" "$work/uploads/vd"; done
    chown -R "$FLEET_USER" "$work/uploads"
}
# Every sync venv holds exactly what REQUIREMENTS pins, by its dist-info.
sync_check() {
    local v want got
    want=$(sed 's/==/-/; s/-/_/g' "$1" | LC_ALL=C sort)
    for v in "${sync_venvs[@]}"; do
        got=$(find "$v"/lib/python3*/site-packages -maxdepth 1 -name 'bench_pkg*.dist-info' -printf '%f\n' |
            sed 's/\.dist-info$//; s/-/_/g' | LC_ALL=C sort)
        [ "$got" = "$want" ] || { echo "bench: $v does not hold what $1 pins:" >&2; echo "$got" >&2; return 1; }
    done
}

# Inventories: CSV for vd and the loops, YAML-as-JSON for Ansible.
inventory() { # NAME PER_HOST PREFIX [PORT]
    fleet_inventory "$2" "$3" "${4:-$FLEET_PORT}" >"$work/$1.csv"
    ansible_inventory "$work/$1.csv" "$work/uploads/ansible" >"$work/$1.yml"
}

ansible_configure "$work" "$HOSTS"
cat >"$work/w1.yml" <<'YML'
- hosts: fleet
  gather_facts: false
  environment: {PIP_DISABLE_PIP_VERSION_CHECK: "1", PIP_NO_INDEX: "1"}
  tasks:
    - name: Drift check
      ansible.builtin.pip:
        name: "{{ pins }}"
        virtualenv: "{{ item }}"
      loop: "{{ venvs }}"
      check_mode: true
YML
cat >"$work/w2.yml" <<'YML'
- hosts: fleet
  gather_facts: false
  environment: {PIP_DISABLE_PIP_VERSION_CHECK: "1", PIP_NO_INDEX: "1"}
  tasks:
    - name: Upload the wheels
      ansible.builtin.copy:
        src: "{{ wanted }}/"
        dest: "{{ wheel_dir }}/"
    - name: Install them
      ansible.builtin.pip:
        name: "{{ pins }}"
        virtualenv: "{{ item }}"
        extra_args: "--no-index --find-links {{ wheel_dir }}"
      loop: "{{ venvs }}"
YML
export LC_ALL=C.UTF-8

# --- The commands measured. Each writes its answer to $out for a check
# after the clock stops; `mem TOOL` records the peak RSS of one process
# (with the children it waited for) under the current cell's name.
mem() { local tool=$1; shift; "$TIME" -a -o "$work/m/$cell.$tool" -f %M "$@"; }

vd_w1() { # INVENTORY
    mem vd-targets "$VD_BIN/vd-targets" -i "$work/$1.csv" | mem vd-freeze "$VD_BIN/vd-freeze" |
        mem vd-diff "$VD_BIN/vd-diff" --repo "$work/repo" "$work/w1.txt" >"$out"
}
vd_sync() { # INVENTORY
    mem vd-targets "$VD_BIN/vd-targets" -i "$work/$1.csv" | mem vd-freeze "$VD_BIN/vd-freeze" |
        mem vd-diff "$VD_BIN/vd-diff" --repo "$work/repo" "$work/w2.txt" |
        mem vd-push "$VD_BIN/vd-push" --repo "$work/repo" >"$out"
}
ansible_run() { # INVENTORY PLAYBOOK PINS
    mem ansible-playbook "$ansible_venv/bin/ansible-playbook" -i "$work/$1.yml" -f "$HOSTS" \
        -e @"$work/$3" -e wanted="$work/wanted" "$work/$2" >"$out"
}
# The metadata a drift check needs, read with no tool: names and versions.
read_metadata='import importlib.metadata as m; print(sorted((d.metadata["Name"], d.version) for d in m.distributions()))'
floor_w1() { # INVENTORY
    tail -n +2 "$work/$1.csv" | cut -d, -f4 |
        mem python xargs -P "$HOSTS" -I{} env {}/bin/python -I -c "$read_metadata" >"$out"
}
# (d) every host at once: an OpenSSH login and `true`, the network's part.
ssh_true() {
    printf '%s\n' "${FLEET_HOSTS[@]}" |
        xargs -P "${#FLEET_HOSTS[@]}" -I{} ssh -n "${FLEET_SSH[@]}" -p "$FLEET_PORT" "$FLEET_USER@{}" true
}
floor_sync() {
    local wheels=() pin
    while read -r pin; do wheels+=("$work/dist/$(wheel_of "$pin")"); done < <(head -n $CHANGED "$work/w2.txt")
    printf '%s\n' "${sync_venvs[@]}" |
        mem pip xargs -P "$HOSTS" -I{} env {}/bin/python -m pip install --quiet --no-index --no-deps \
            --disable-pip-version-check "${wheels[@]}" >"$out"
}
serial_ssh() { # PORT USER HOST COMMAND
    ssh -n "${FLEET_SSH[@]}" -p "$1" "$2@$3" "$4"
}
# (a): per target, pip freeze, and for each pin it lacks, scp the wheel and
# `pip install --upgrade` it (by name, from the uploaded wheels, so that
# freeze reads name==version after). REQUIREMENTS is the wanted state.
serial_run() { # INVENTORY REQUIREMENTS
    local host port user venv missing wheels pin dir
    : >"$out"
    tail -n +2 "$work/$1.csv" | while IFS=, read -r host port user venv _; do
        missing=$(serial_ssh "$port" "$user" "$host" "$venv/bin/pip freeze" | LC_ALL=C sort | LC_ALL=C comm -13 - "$2") || exit 1
        [ -n "$missing" ] || continue
        echo "$venv: ${missing//$'\n'/ }" >>"$out"
        wheels=()
        for pin in $missing; do wheels+=("$work/dist/$(wheel_of "$pin")"); done
        dir=$work/uploads/serial/$host
        scp -q "${FLEET_SSH[@]}" -P "$port" "${wheels[@]}" "$user@$host:$dir/" </dev/null || exit 1
        for pin in $missing; do
            serial_ssh "$port" "$user" "$host" \
                "$venv/bin/pip install --quiet --upgrade --no-index --find-links $dir --disable-pip-version-check $pin" || exit 1
        done
    done
}

# --- Checks of the answers, outside the clock.
check_vd() { # EXPECTED_RECORDS KIND: plan-empty | plan-changes | pushed
    python3 - "$out" "$1" "$2" <<'PY'
import json, sys
path, want, kind = sys.argv[1], int(sys.argv[2]), sys.argv[3]
records = [json.loads(l) for l in open(path)]
problems = [r["error"] for r in records if "error" in r]
if len(records) != want:
    problems.append(f"{len(records)} records, not {want}")
for r in records:
    if kind == "plan-empty" and r.get("plan") != []:
        problems.append(f"{r.get('venv')}: plan {r.get('plan')}")
    if kind == "changed" and r.get("changed") is not True:
        problems.append(f"{r.get('venv')}: not changed")
    if kind == "unchanged" and r.get("changed") is not False:
        problems.append(f"{r.get('venv')}: changed")
if problems:
    sys.exit("bench: wrong answer: " + "; ".join(str(p)[:300] for p in problems[:3]))
PY
}
check_ansible() { # EXPECT: changed | unchanged
    local recap
    recap=$(grep -E '^[^ ]+ +: ok=' "$out" || true)
    [ "$(echo "$recap" | grep -c 'unreachable=0 *failed=0')" -eq "$HOSTS" ] ||
        { echo "bench: ansible failed:" >&2; cat "$out" >&2; return 1; }
    case $1 in
        unchanged) echo "$recap" | grep -qv 'changed=0' && { echo "bench: ansible saw changes:" >&2; cat "$out" >&2; return 1; } ;;
        changed) echo "$recap" | grep -q 'changed=0' && { echo "bench: ansible changed nothing on a host:" >&2; cat "$out" >&2; return 1; } ;;
    esac
    return 0
}
check_empty() { [ ! -s "$out" ] || { echo "bench: drift found where there is none:" >&2; head "$out" >&2; return 1; }; }
check_true() { return 0; }

# once CELL COMMAND CHECK [AFTER]: one run of COMMAND, timed, then CHECK
# and AFTER (untimed); the time is added to $work/t/CELL. The peers' runs
# are interleaved (one of each, then again) so that all of them see the
# same load on a machine that may be doing other work.
once() {
    local command=$2 check=$3 start end t
    cell=$1
    out=$work/out.$cell
    start=$(date +%s.%N)
    eval "$command" || fail "$cell: the command failed (its output was:)$(echo; head -c 2000 "$out")"
    end=$(date +%s.%N)
    eval "$check" || fail "$cell: wrong answer"
    t=$(echo "$end - $start" | bc -l)
    echo "$t" >>"$work/t/$cell"
    progress "$cell: $(printf '%.3f' "$t") s"
    [ -z "${4:-}" ] || eval "$4"
}
# The median time of CELL in seconds, "n/a" when it was not run.
median_of() {
    [ -s "$work/t/$1" ] || { echo n/a; return; }
    local times
    mapfile -t times <"$work/t/$1"
    bench_median "${times[@]}"
}
runs_of() { [ -s "$work/t/$1" ] && wc -l <"$work/t/$1" || echo 0; }
peak_of() { # CELL TOOL: the highest peak RSS of all runs, in MiB
    [ -s "$work/m/$1.$2" ] || { echo n/a; return; }
    grep -E '^[0-9]+$' "$work/m/$1.$2" | sort -n | tail -n 1 | awk '{ printf "%.1f", $1 / 1024 }'
}
secs() { # CELL: "1.234" (with the run count when it is not RUNS)
    local m n
    m=$(median_of "$1")
    [ "$m" = n/a ] && { echo "not run"; return; }
    n=$(runs_of "$1")
    if [ "$n" -eq "$RUNS" ]; then printf '%.3f' "$m"; else printf '%.3f (%d runs)' "$m" "$n"; fi
}
ratio() { # A B: A / B, "n/a" when either is missing
    local a b
    a=$(median_of "$1") b=$(median_of "$2")
    { [ "$a" = n/a ] || [ "$b" = n/a ]; } && { echo n/a; return; }
    awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", a / b }'
}

part() { case " $PARTS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

# --- W1 at each size. A warm-up first (page cache, first connections),
# unmeasured: a run of vd, or above PEERS_MAX, where that takes a minute, a
# walk of the venvs.
part w1 || SIZES=
for size in $SIZES; do
    inventory "w1-$size" $((size / HOSTS)) "$w1_venvs/v"
    slow=$RUNS fast=$RUNS
    [ "$size" -ge 100 ] && slow=$SLOW_RUNS
    [ "$size" -gt "$PEERS_MAX" ] && fast=$BIG_RUNS slow=0
    cell=warm out=$work/out.warm
    if [ "$size" -le "$PEERS_MAX" ]; then
        vd_w1 "w1-$size" || fail "vd W1 at $size targets failed"
    else
        for i in $(seq 1 "$size"); do echo "$w1_venvs/v$i"; done | xargs find >/dev/null
    fi
    for ((i = 0; i < fast || i < slow; i++)); do
        if [ "$i" -lt "$fast" ]; then
            once "w1-$size-vd" "vd_w1 w1-$size" "check_vd $size plan-empty"
            once "w1-$size-floor" "floor_w1 w1-$size" check_true
            once "w1-$size-ssh" ssh_true check_true
        fi
        if [ "$i" -lt "$slow" ]; then
            once "w1-$size-ansible" "ansible_run w1-$size w1.yml pins-w1.json" "check_ansible unchanged" "ansible_disconnect $work"
            once "w1-$size-serial" "serial_run w1-$size $work/w1.txt" check_empty
        fi
    done
done

# --- W2 then W3, per peer: reset, sync (W2), and the same again (W3).
if part sync; then
    inventory sync "$SYNC_PER_HOST" "$work/sync/v"
    # vd-push's wheel cache, one per host: the hosts here are one machine
    # and one login user, and a shared ~/.cache would let a host find the
    # wheels another host uploaded, as no real fleet does.
    awk -F, -v OFS=, -v d="$work/uploads/vd" 'NR == 1 { print $0, "cache"; next } { print $0, d "/" $1 }' \
        "$work/sync.csv" >"$work/sync.csv.new"
    mv "$work/sync.csv.new" "$work/sync.csv"
    sync_reset
    sync_check "$work/w1.txt" || fail "the sync venvs were not reset"
    w2_check="sync_check $work/w2.txt"
    for ((i = 0; i < RUNS; i++)); do
        if $have_push; then
            sync_reset
            once w2-vd "vd_sync sync" "check_vd $sync_count changed && $w2_check"
            once w3-vd "vd_sync sync" "check_vd $sync_count unchanged && $w2_check"
        fi
        if [ "$i" -lt "$SLOW_RUNS" ]; then
            sync_reset
            once w2-ansible "ansible_run sync w2.yml pins-w2.json" "check_ansible changed && $w2_check" "ansible_disconnect $work"
            once w3-ansible "ansible_run sync w2.yml pins-w2.json" "check_ansible unchanged && $w2_check" "ansible_disconnect $work"
        fi
        if [ "$i" -lt "$SLOW_RUNS" ]; then
            sync_reset
            once w2-serial "serial_run sync $work/w2.txt" "$w2_check"
            once w3-serial "serial_run sync $work/w2.txt" "check_empty && $w2_check"
        fi
        sync_reset
        once w2-floor floor_sync "$w2_check"
        once w3-floor "floor_w1 sync" check_true
    done
fi

# --- Latency: W1 through a proxy that delays each direction ONE_WAY_MS.
if part latency; then
proxy_port=$(fleet_free_port)
forwards=()
for h in "${FLEET_HOSTS[@]}"; do forwards+=("$h:$proxy_port=$h:$FLEET_PORT"); done
python3 bench/delay_proxy.py "$ONE_WAY_MS" "$work/proxy.stats" "${forwards[@]}" >"$work/proxy.out" 2>"$work/proxy.err" &
proxy_pid=$!
for h in "${FLEET_HOSTS[@]}"; do fleet_wait_port "$h" "$proxy_port" || fail "the delay proxy did not start: $(cat "$work/proxy.err")"; done
fleet_trust "$proxy_port"
inventory latency "$LATENCY_PER_HOST" "$w1_venvs/v" "$proxy_port"
# After a run: wait for its connections to close, then count its round
# trips per target into $work/trips/CELL.
count_trips() {
    local i
    for i in $(seq 100); do [ "$(cat "$work/proxy.stats.open")" = 0 ] && break; sleep 0.05; done
    awk -v n="$latency_count" '{ t += $2 } END { printf "%.1f\n", t / n }' "$work/proxy.stats" >>"$work/trips/$cell"
    : >"$work/proxy.stats"
}
: >"$work/proxy.stats"
for ((i = 0; i < LATENCY_RUNS; i++)); do
    once lat-vd "vd_w1 latency" "check_vd $latency_count plan-empty" count_trips
    [ "$i" -lt "$SLOW_RUNS" ] || continue
    once lat-ansible "ansible_run latency w1.yml pins-w1.json" "check_ansible unchanged" "ansible_disconnect $work; count_trips"
    once lat-serial "serial_run latency $work/w1.txt" check_empty count_trips
done
proxy_stop
fi
trips_of() {
    local trips
    [ -s "$work/trips/$1" ] || { echo n/a; return; }
    mapfile -t trips <"$work/trips/$1"
    bench_median "${trips[@]}"
}

# --- The report.
cores=$(nproc)
mem_total=$(awk '/MemTotal/ { printf "%.0f", $2 / 1048576 }' /proc/meminfo)
cat <<EOF
### vd against its peers: Ansible, a serial ssh loop, and the floor

$HOSTS hosts (one sshd on loopback addresses), $cores cores, $mem_total GiB; login
user \`$FLEET_USER\` ($(getent passwd "$FLEET_USER" | cut -d: -f7)); python $pyver;
ansible-core $ANSIBLE_CORE (forks $HOSTS, pipelining on).
Repository: $((PROJECTS * 2)) wheels ($PROJECTS projects at 1.0 and 1.1); every venv
holds the $PROJECTS projects, pip and Django's closure ($(find "$django_wheels" -name '*.whl' | wc -l) wheels of
\`$DJANGO\`). Times are medians of $RUNS runs unless a cell says otherwise, in
seconds; load average $(cut -d' ' -f1-3 /proc/loadavg) at the end.

#### W1: drift check (nothing to change), by number of targets

| targets | vd | (c) floor | (d) ssh true | (b) Ansible | (a) serial ssh | vd / floor | vd / ssh true | Ansible / vd | (a) / vd |
|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|
EOF
for size in $SIZES; do
    echo "| $size | $(secs "w1-$size-vd") | $(secs "w1-$size-floor") | $(secs "w1-$size-ssh") | $(secs "w1-$size-ansible") | $(secs "w1-$size-serial") | $(ratio "w1-$size-vd" "w1-$size-floor") | $(ratio "w1-$size-vd" "w1-$size-ssh") | $(ratio "w1-$size-ansible" "w1-$size-vd") | $(ratio "w1-$size-serial" "w1-$size-vd") |"
done
cat <<EOF

Peak memory (MiB, the highest of the runs; for Ansible and the loops the
largest process on the controller side):

| targets | vd-targets | vd-freeze | vd-diff | ansible-playbook | floor (one python) | vd ms per target |
|---:|---:|---:|---:|---:|---:|---:|
EOF
for size in $SIZES; do
    per=$(awk -v t="$(median_of "w1-$size-vd")" -v n="$size" 'BEGIN { printf "%.1f", 1000 * t / n }')
    echo "| $size | $(peak_of "w1-$size-vd" vd-targets) | $(peak_of "w1-$size-vd" vd-freeze) | $(peak_of "w1-$size-vd" vd-diff) | $(peak_of "w1-$size-ansible" ansible-playbook) | $(peak_of "w1-$size-floor" python) | $per |"
done
w2vd="not measured: no $VD_BIN/vd-push"
w3vd=$w2vd
if $have_push; then w2vd=$(secs w2-vd) w3vd=$(secs w3-vd); fi
cat <<EOF

#### W2: sync $CHANGED changed wheels on $sync_count targets; W3: the same once in sync

| workload | vd | (c) floor | (b) Ansible | (a) serial ssh | vd / floor | Ansible / vd | (a) / vd |
|---|---:|---:|---:|---:|---:|---:|---:|
| W2 sync | $w2vd | $(secs w2-floor) | $(secs w2-ansible) | $(secs w2-serial) | $(ratio w2-vd w2-floor) | $(ratio w2-ansible w2-vd) | $(ratio w2-serial w2-vd) |
| W3 no-op | $w3vd | $(secs w3-floor) | $(secs w3-ansible) | $(secs w3-serial) | $(ratio w3-vd w3-floor) | $(ratio w3-ansible w3-vd) | $(ratio w3-serial w3-vd) |

The W3 floor is W1's (a metadata read per venv): nothing is left to install.

#### Latency: W1 on $latency_count targets through a proxy adding $((2 * ONE_WAY_MS)) ms round-trip time

| peer | time (s) | round trips per target |
|---|---:|---:|
| vd | $(secs lat-vd) | $(trips_of lat-vd) |
| (b) Ansible | $(secs lat-ansible) | $(trips_of lat-ansible) |
| (a) serial ssh | $(secs lat-serial) | $(trips_of lat-serial) |

A round trip is a turn of the traffic from client-to-server to
server-to-client on one connection (connection set-up included), counted
by the proxy and divided by the targets.

#### Targets

EOF
verdict() { # LABEL VALUE OP LIMIT
    local v=$2
    if [ "$v" = n/a ]; then echo "- $1: not measured"; return; fi
    if awk -v v="$v" -v l="$4" "BEGIN { exit !(v $3 l) }"; then echo "- $1: $v (target $3 $4): met"; else echo "- $1: $v (target $3 $4): missed"; fi
}
verdict "W1 at 100 targets, vd / (d) ssh true on every host" "$(ratio w1-100-vd w1-100-ssh)" "<=" 0.33
verdict "W1 at 100 targets, Ansible / vd" "$(ratio w1-100-ansible w1-100-vd)" ">=" 100
verdict "W1 at 100 targets, (a) / vd" "$(ratio w1-100-serial w1-100-vd)" ">=" 50
verdict "W2, Ansible / vd" "$(ratio w2-ansible w2-vd)" ">=" 5
verdict "W1 at 100 targets, vd / floor" "$(ratio w1-100-vd w1-100-floor)" "<=" 2
growth() { # SMALL LARGE: how much more time per target at LARGE than SMALL
    local a b
    a=$(median_of "w1-$1-vd") b=$(median_of "w1-$2-vd")
    { [ "$a" = n/a ] || [ "$b" = n/a ]; } && { echo n/a; return; }
    awk -v a="$a" -v b="$b" -v s="$1" -v l="$2" 'BEGIN { printf "%.2f", (b / l) / (a / s) }'
}
verdict "W1 vd time per target at 1000 / at 100 targets (linear = 1)" "$(growth 100 1000)" "<=" 1.1
seconds() { local m; m=$(median_of "$1"); [ "$m" = n/a ] && echo n/a || printf '%.3f' "$m"; }
verdict "W1 at 1000 targets, vd (s)" "$(seconds w1-1000-vd)" "<" 2
flat() { # TOOL: its peak memory at 1000 targets / at 100
    local a b
    a=$(peak_of w1-100-vd "$1") b=$(peak_of w1-1000-vd "$1")
    { [ "$a" = n/a ] || [ "$b" = n/a ]; } && { echo n/a; return; }
    awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", b / a }'
}
verdict "W1 vd-freeze peak memory at 1000 / at 100 targets (flat = 1)" "$(flat vd-freeze)" "<=" 1.2
