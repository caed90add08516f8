#!/usr/bin/env bash
# vd-push: 10 changed wheels to 20 venvs on 4 hosts (an OpenSSH server on
# 127.0.0.2-5), median of BENCH_RUNS runs (default 5), against
#  (a) the original tool's way: a serial loop that copies each wheel to each
#      venv's host with scp, then runs `pip install --upgrade` on one wheel
#      at a time over ssh (a new connection each, as the fabfile did);
#  (b) the floor: the same `pip install --no-index --no-deps FILES` vd-push
#      runs, run directly on each venv without SSH, one venv at a time per
#      "host" and the 4 hosts at once, as vd-push does by default.
# Before every timed run the venvs are put back to the old versions and the
# hosts' wheel caches emptied, so every run uploads and installs everything.
# Targets: vd-push at least 5x faster than (a), within 1.3x of (b).
# (a) takes minutes per run; ORIGINAL_RUNS (default BENCH_RUNS) sets how
# many times it is timed. Each run's times are printed to stderr as taken.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/lib.sh"
VD_BIN="${VD_BIN:-$here/../target/release}"
BENCH_RUNS="${BENCH_RUNS:-5}"
ORIGINAL_RUNS="${ORIGINAL_RUNS:-$BENCH_RUNS}"
PYTHON="${PYTHON:-python3}"
for t in vd-add vd-freeze vd-diff vd-push; do
    [ -x "$VD_BIN/$t" ] || { echo "bench: build first (make build): no $VD_BIN/$t" >&2; exit 1; }
done
hosts=(127.0.0.2 127.0.0.3 127.0.0.4 127.0.0.5)
per_host=5

work=$(mktemp -d)
sshd_pid=
cleanup() {
    [ -n "$sshd_pid" ] && kill "$sshd_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# Wheels: 10 packages at 1.0 (installed) and 1.1 (planned).
"$PYTHON" "$here/make_wheels.py" "$work/dist" 20 2
"$VD_BIN/vd-add" --repo "$work/wheels" "$work"/dist/*.whl >/dev/null
for i in $(seq 0 9); do printf 'bench-pkg-%04d==1.1\n' "$i"; done >"$work/requirements.txt"

# The "hosts": one sshd on four loopback addresses, a throwaway key, and a
# HOME for the tools (and for ssh/scp) that knows them.
mkdir -p "$work/home/.ssh" "$work/sshd"
ssh-keygen -q -t ed25519 -N '' -f "$work/sshd/host_key"
ssh-keygen -q -t ed25519 -N '' -f "$work/home/.ssh/id_ed25519"
cp "$work/home/.ssh/id_ed25519.pub" "$work/sshd/authorized_keys"
port=$("$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
{
    for h in "${hosts[@]}"; do echo "ListenAddress $h:$port"; done
    cat <<EOF
HostKey $work/sshd/host_key
AuthorizedKeysFile $work/sshd/authorized_keys
PidFile none
StrictModes no
UsePAM no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
MaxStartups 100
MaxSessions 100
Subsystem sftp internal-sftp
EOF
} >"$work/sshd/config"
[ "$(id -u)" = 0 ] && mkdir -p /run/sshd
/usr/sbin/sshd -D -f "$work/sshd/config" -E "$work/sshd/log" &
sshd_pid=$!
for h in "${hosts[@]}"; do
    for _ in $(seq 100); do (exec 3<>"/dev/tcp/$h/$port") 2>/dev/null && break; sleep 0.05; done
    echo "[$h]:$port $(cut -d' ' -f1,2 "$work/sshd/host_key.pub")" >>"$work/home/.ssh/known_hosts"
done
export HOME="$work/home"
unset SSH_AUTH_SOCK
user=$(id -un)
ssh_opts=(-o BatchMode=yes -o UserKnownHostsFile="$work/home/.ssh/known_hosts" -i "$work/home/.ssh/id_ed25519" -P "$port")

# One venv with pip and the old versions; every run's venvs are copies.
"$PYTHON" -m venv "$work/template"
"$work/template/bin/python" -m pip install -q --no-index --no-deps "$work"/dist/*-1.0-*.whl
venvs=()
for h in "${hosts[@]}"; do
    for v in $(seq 1 $per_host); do venvs+=("$h $work/venvs/$h/v$v"); done
done
reset_venvs() {
    rm -rf "$work/venvs" "$work"/cache-* "$work"/scp-*
    for entry in "${venvs[@]}"; do
        set -- $entry
        mkdir -p "$(dirname "$2")"
        cp -a "$work/template" "$2"
    done
    sync
}
reset_venvs
for entry in "${venvs[@]}"; do
    set -- $entry
    printf '{"host":"%s","port":%s,"user":"%s","venv":"%s","cache":"%s"}\n' \
        "$1" "$port" "$user" "$2" "$work/cache-$1"
done >"$work/targets.jsonl"
"$VD_BIN/vd-freeze" <"$work/targets.jsonl" | "$VD_BIN/vd-diff" --repo "$work/wheels" "$work/requirements.txt" >"$work/plans.jsonl"
changes=$(grep -o '"action":"upgrade"' "$work/plans.jsonl" | wc -l)
[ "$changes" = 200 ] || { echo "bench: expected 200 planned upgrades, got $changes" >&2; exit 1; }

cat >"$work/vd.sh" <<EOF
"$VD_BIN/vd-push" --repo "$work/wheels" <"$work/plans.jsonl" >"$work/pushed.jsonl"
EOF
# (a) The original way: serial, a new connection per copy and per pip run.
cat >"$work/original.sh" <<EOF
set -e
for entry in $(printf "'%s' " "${venvs[@]}"); do
    set -- \$entry
    dir="$work/scp-\$1/\$(basename \$2)"
    ssh ${ssh_opts[*]/-P/-p} "$user@\$1" "mkdir -p \$dir"
    for w in "$work"/wheels/*-1.1-*.whl; do
        scp -q ${ssh_opts[*]} "\$w" "$user@\$1:\$dir/"
    done
    for w in "$work"/wheels/*-1.1-*.whl; do
        ssh ${ssh_opts[*]/-P/-p} "$user@\$1" "\$2/bin/python -m pip install -q --upgrade --no-index \$dir/\$(basename \$w)"
    done
done
EOF
# (b) The floor: the same pip command, no SSH, hosts in parallel.
cat >"$work/floor.sh" <<EOF
set -e
for h in ${hosts[*]}; do
    (
        for v in \$(seq 1 $per_host); do
            "$work/venvs/\$h/v\$v/bin/python" -m pip --isolated --disable-pip-version-check --no-input --no-cache-dir \
                install -q --no-index --no-deps "$work"/wheels/*-1.1-*.whl
        done
    ) &
done
wait
EOF

ta=() tb=() tc=()
for ((i = 0; i < BENCH_RUNS; i++)); do
    reset_venvs
    ta+=("$(bench_time bash "$work/vd.sh")")
    if grep -q '"error"' "$work/pushed.jsonl"; then
        echo "bench: vd-push failed:" >&2
        grep '"error"' "$work/pushed.jsonl" | head -3 >&2
        exit 1
    fi
    reset_venvs
    tc+=("$(bench_time bash "$work/floor.sh")")
    if ((i < ORIGINAL_RUNS)); then
        reset_venvs
        tb+=("$(bench_time bash "$work/original.sh")")
    fi
    echo "bench: run $((i + 1)): vd-push ${ta[i]}s, floor ${tc[i]}s${tb[i]:+, original ${tb[i]}s}" >&2
done
vd=$(bench_median "${ta[@]}")
original=$(bench_median "${tb[@]}")
floor=$(bench_median "${tc[@]}")
echo "### vd-push: 10 changed wheels to 20 venvs on 4 hosts"
echo
echo "| what | median (s) | runs |"
echo "|---|---|---|"
echo "| vd-push | $vd | $BENCH_RUNS |"
echo "| (a) serial scp + pip install --upgrade per wheel | $original | $ORIGINAL_RUNS |"
echo "| (b) pip install --no-index --no-deps per venv, no SSH | $floor | $BENCH_RUNS |"
echo
echo "speed-up over (a): $(bench_ratio "$original" "$vd")x (target: at least 5)"
echo "ratio vd-push / (b): $(bench_ratio "$vd" "$floor") (target: at most 1.3)"
echo "runs (s): vd-push ${ta[*]}; (a) ${tb[*]}; (b) ${tc[*]}; $(nproc) cores"
