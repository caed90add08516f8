#!/usr/bin/env bash
# vd-freeze against the way the original Fabric tool asked: 20 venvs on 4
# hosts, `vd-targets | vd-freeze` (one session per host, hosts in parallel)
# vs a serial loop of OpenSSH `ssh HOST VENV/bin/pip freeze`. The hosts are
# one throwaway sshd on 4 loopback addresses; the venvs are real and made
# once (cached under target/bench). Prints the median of RUNS runs of each.
#
# Both sides log in as the same user. Run as root, that is a throwaway
# account `vd-bench` with /bin/sh as its login shell, like a deploy account
# (root's own login shell may source a heavy ~/.bashrc, e.g. `pyenv init`,
# on every command, which measures that file, not vd); LOGIN_USER=root
# measures with root anyway. Otherwise it is the current user.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
HOSTS=4
PER_HOST=5
BIN=${BIN:-target/release}
PYTHON=${VD_TEST_PYTHON:-python3}
if [ "$(id -u)" -eq 0 ]; then
    LOGIN_USER=${LOGIN_USER:-vd-bench}
    if [ "$LOGIN_USER" != root ]; then
        # `-p '*'`: no password, yet not locked (sshd refuses locked accounts).
        id "$LOGIN_USER" >/dev/null 2>&1 ||
            useradd --system --create-home --home-dir "/var/lib/$LOGIN_USER" --shell /bin/sh -p '*' "$LOGIN_USER"
        # The venvs' interpreter must be one that user may run.
        PYTHON=${VD_TEST_PYTHON:-/usr/bin/python3}
    fi
else
    LOGIN_USER=$(id -un)
fi

for need in /usr/sbin/sshd ssh ssh-keygen; do
    command -v "$need" >/dev/null || { echo "bench: $need is missing (apt-get install openssh-server openssh-client)" >&2; exit 1; }
done
[ -x "$BIN/vd-freeze" ] || { echo "bench: no $BIN/vd-freeze; run make build" >&2; exit 1; }

cache=$PWD/target/bench/venvs-$("$PYTHON" -c 'import sys; print(sys.version_info[0], sys.version_info[1], sep=".")')-$(echo "$PYTHON" | tr / _)
mkdir -p "$cache"
make_venv() { [ -e "$1/.ready" ] || { rm -rf "$1" && "$PYTHON" -m venv "$1" && touch "$1/.ready"; }; }
export -f make_venv
export PYTHON
missing=0
for i in $(seq 1 $((HOSTS * PER_HOST))); do [ -e "$cache/v$i/.ready" ] || missing=$((missing + 1)); done
if [ "$missing" -gt 0 ]; then
    echo "making $missing venvs with pip (once; cached in $cache)" >&2
    seq 1 $((HOSTS * PER_HOST)) | sed "s|^|$cache/v|" | xargs -P 4 -I{} bash -c 'make_venv "$1"' _ {}
fi

work=$(mktemp -d)
chmod 755 "$work"
sshd_pid=
cleanup() { [ -n "$sshd_pid" ] && kill "$sshd_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
[ "$(id -u)" -eq 0 ] && mkdir -p /run/sshd
ssh-keygen -q -t ed25519 -N '' -f "$work/host_key"
mkdir -p "$work/home/.ssh"
ssh-keygen -q -t ed25519 -N '' -f "$work/home/.ssh/id_ed25519"
cp "$work/home/.ssh/id_ed25519.pub" "$work/authorized_keys"
chmod 644 "$work/authorized_keys"
port=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
user=$LOGIN_USER
{
    for h in $(seq 2 $((HOSTS + 1))); do echo "ListenAddress 127.0.0.$h:$port"; done
    cat <<CONF
HostKey $work/host_key
AuthorizedKeysFile $work/authorized_keys
PidFile none
StrictModes no
UsePAM no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
MaxStartups 100
MaxSessions 100
LogLevel ERROR
CONF
} > "$work/sshd_config"
/usr/sbin/sshd -D -e -f "$work/sshd_config" 2>"$work/sshd.log" &
sshd_pid=$!
for h in $(seq 2 $((HOSTS + 1))); do
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.$h/$port") 2>/dev/null && break
        sleep 0.05
    done
done

echo "host,port,user,venv" > "$work/targets.csv"
n=0
for h in $(seq 2 $((HOSTS + 1))); do
    echo "[127.0.0.$h]:$port $(cut -d' ' -f1,2 "$work/host_key.pub")" >> "$work/home/.ssh/known_hosts"
    for _ in $(seq 1 $PER_HOST); do
        n=$((n + 1))
        echo "127.0.0.$h,$port,$user,$cache/v$n" >> "$work/targets.csv"
    done
done
export HOME=$work/home
unset SSH_AUTH_SOCK

vd_run() {
    "$BIN/vd-targets" -i "$work/targets.csv" | "$BIN/vd-freeze" > "$work/freeze.jsonl"
}
ssh_run() {
    tail -n +2 "$work/targets.csv" | while IFS=, read -r host port user venv; do
        ssh -n -F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=yes \
            -o UserKnownHostsFile="$HOME/.ssh/known_hosts" -i "$HOME/.ssh/id_ed25519" \
            -p "$port" "$user@$host" "$venv/bin/pip freeze" > /dev/null
    done
}
seconds() {
    local start end
    start=$(date +%s.%N)
    "$@"
    end=$(date +%s.%N)
    awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f\n", b - a }'
}
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# Warm up both (page cache, first connections), and check vd's answer.
vd_run
ssh_run
[ "$(wc -l < "$work/freeze.jsonl")" -eq $((HOSTS * PER_HOST)) ] || { echo "bench: vd-freeze wrote the wrong number of records" >&2; exit 1; }
if grep -q '"error"' "$work/freeze.jsonl"; then echo "bench: vd-freeze failed:" >&2; grep '"error"' "$work/freeze.jsonl" >&2; exit 1; fi

vd_times=() ssh_times=()
for _ in $(seq 1 "$RUNS"); do
    vd_times+=("$(seconds vd_run)")
    ssh_times+=("$(seconds ssh_run)")
done
vd=$(printf '%s\n' "${vd_times[@]}" | median)
ssh=$(printf '%s\n' "${ssh_times[@]}" | median)
printf '%d venvs on %d hosts (loopback, %s cores), login %s, median of %d runs\n' \
    $((HOSTS * PER_HOST)) "$HOSTS" "$(nproc)" "$user" "$RUNS"
printf '  %-44s %8.3f s\n' "vd-targets | vd-freeze" "$vd"
printf '  %-44s %8.3f s\n' "serial ssh HOST VENV/bin/pip freeze" "$ssh"
printf '  %-44s %8.1fx\n' "speed-up" "$(awk -v a="$ssh" -v b="$vd" 'BEGIN { print a / b }')"
