# shellcheck shell=bash
# The loopback fleet that the benchmarks and the demo (examples/demo.sh) run
# vd against: one throwaway sshd listening on several loopback addresses,
# 127.0.0.2 and up, each address standing for one host, and real
# virtualenvs (for the benchmarks, made once and cached under target/bench).
# Sourced, not run; bash only.
#
#   fleet_require [COMMAND=PACKAGE...]
#                           make sure what the fleet needs is here (sshd, the
#                           OpenSSH client, FLEET_PYTHON with venv and
#                           ensurepip) and each COMMAND given: as root with
#                           apt-get, the missing Debian packages are
#                           installed; otherwise it fails naming them
#   fleet_user              set FLEET_USER (the login user) and FLEET_PYTHON
#                           (an interpreter that user may run)
#   fleet_start HOSTS       start sshd on HOSTS addresses; sets FLEET_DIR (a
#                           scratch folder, removed by fleet_stop), FLEET_PORT,
#                           FLEET_HOSTS (the addresses), FLEET_SSH (OpenSSH
#                           options, an array) and HOME (a home with the
#                           client key and known_hosts; SSH_AUTH_SOCK unset)
#   fleet_trust PORT        trust the hosts' key at PORT too (a proxy's port)
#   fleet_inventory PER_HOST VENV_PREFIX [PORT]
#                           a targets.csv on stdout: PER_HOST venvs per host,
#                           VENV_PREFIX1, VENV_PREFIX2, ... in host order
#   fleet_venvs DIR COUNT [PIP_INSTALL_ARGUMENT...]
#                           DIR/v1 .. DIR/vCOUNT: venvs with pip, and what
#                           `pip install --no-index ARGS` installs, made once
#                           (DIR is the cache key)
#   fleet_clone_venv TEMPLATE VENV [copy]
#                           a venv at VENV with TEMPLATE's packages
#   fleet_reset_packages TEMPLATE_SITE PREFIX VENV...
#                           put back the packages whose files start with
#                           PREFIX (their modules, dist-info and bytecode)
#                           in each VENV as TEMPLATE_SITE (a site-packages)
#                           has them, owned by FLEET_USER
#   fleet_stop              stop sshd and remove FLEET_DIR (trap it on EXIT)
#
# Every side of a benchmark, and the demo, logs in as the same user. Run as
# root, that is a throwaway account `vd-bench` with /bin/sh as its login
# shell, like a deploy account: root's own login shell may source a heavy
# ~/.bashrc (here it runs `pyenv init`) on every command, which would
# measure that file, not the tools. LOGIN_USER=root logs in as root anyway.
# Otherwise it is the current user.

# shellcheck source-path=SCRIPTDIR source=../scripts/require.sh
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/require.sh"

fleet_require() {
    local need=() tool pair
    fleet_user
    [ -x /usr/sbin/sshd ] || need+=(openssh-server)
    for tool in ssh ssh-keygen scp; do
        command -v "$tool" >/dev/null || { need+=(openssh-client); break; }
    done
    if ! command -v "$FLEET_PYTHON" >/dev/null; then
        need+=(python3 python3-venv)
    elif ! "$FLEET_PYTHON" -c 'import ensurepip, venv' 2>/dev/null; then
        need+=(python3-venv)
    fi
    for pair in "$@"; do
        command -v "${pair%%=*}" >/dev/null || need+=("${pair#*=}")
    done
    require_packages fleet "${need[@]}"
}

fleet_user() {
    [ -n "${FLEET_USER:-}" ] && [ -n "${FLEET_PYTHON:-}" ] && return
    FLEET_PYTHON=${VD_TEST_PYTHON:-python3}
    if [ "$(id -u)" -eq 0 ]; then
        FLEET_USER=${LOGIN_USER:-vd-bench}
        if [ "$FLEET_USER" != root ]; then
            # `-p '*'`: no password, yet not locked (sshd refuses locked accounts).
            id "$FLEET_USER" >/dev/null 2>&1 ||
                useradd --system --create-home --home-dir "/var/lib/$FLEET_USER" --shell /bin/sh -p '*' "$FLEET_USER"
            # The venvs' interpreter must be one that user may run (not
            # root's pyenv shims).
            FLEET_PYTHON=${VD_TEST_PYTHON:-/usr/bin/python3}
        fi
    else
        FLEET_USER=$(id -un)
    fi
}

fleet_start() {
    local hosts=$1 h need
    for need in /usr/sbin/sshd ssh ssh-keygen; do
        command -v "$need" >/dev/null || { echo "fleet: $need is missing (apt-get install openssh-server openssh-client)" >&2; return 1; }
    done
    fleet_user
    FLEET_DIR=$(mktemp -d)
    # The login user reads authorized_keys and, in some benchmarks, files here.
    chmod 755 "$FLEET_DIR"
    FLEET_SSHD_PID=
    [ "$(id -u)" -eq 0 ] && mkdir -p /run/sshd
    ssh-keygen -q -t ed25519 -N '' -f "$FLEET_DIR/host_key"
    mkdir -p "$FLEET_DIR/home/.ssh"
    ssh-keygen -q -t ed25519 -N '' -f "$FLEET_DIR/home/.ssh/id_ed25519"
    cp "$FLEET_DIR/home/.ssh/id_ed25519.pub" "$FLEET_DIR/authorized_keys"
    chmod 644 "$FLEET_DIR/authorized_keys"
    FLEET_PORT=$(fleet_free_port)
    FLEET_HOSTS=()
    for h in $(seq 2 $((hosts + 1))); do FLEET_HOSTS+=("127.0.0.$h"); done
    # MaxStartups/MaxSessions: peers open many sessions at once.
    cat >"$FLEET_DIR/sshd_config" <<CONF
HostKey $FLEET_DIR/host_key
AuthorizedKeysFile $FLEET_DIR/authorized_keys
PidFile none
StrictModes no
UsePAM no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
MaxStartups 200
MaxSessions 200
LogLevel ERROR
Subsystem sftp internal-sftp
CONF
    # One sshd listens on at most 16 addresses (its MAX_LISTEN_SOCKS): one
    # per 16 hosts, all with the same settings and port.
    local first listen pids=()
    for ((first = 0; first < hosts; first += 16)); do
        listen=()
        for h in "${FLEET_HOSTS[@]:first:16}"; do listen+=(-o "ListenAddress=$h:$FLEET_PORT"); done
        /usr/sbin/sshd -D -e -f "$FLEET_DIR/sshd_config" "${listen[@]}" 2>>"$FLEET_DIR/sshd.log" &
        pids+=($!)
    done
    FLEET_SSHD_PID=${pids[*]}
    for h in "${FLEET_HOSTS[@]}"; do fleet_wait_port "$h" "$FLEET_PORT" || {
        echo "fleet: sshd did not listen on $h:$FLEET_PORT:" >&2
        cat "$FLEET_DIR/sshd.log" >&2
        return 1
    }; done
    fleet_trust "$FLEET_PORT"
    export HOME=$FLEET_DIR/home
    unset SSH_AUTH_SOCK
    # What a careful hand-written loop would pass OpenSSH: no user config,
    # no prompts, only the known host key, only this key.
    # shellcheck disable=SC2034 # read by the scripts that source this
    FLEET_SSH=(-F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=yes
        -o UserKnownHostsFile="$HOME/.ssh/known_hosts" -i "$HOME/.ssh/id_ed25519")
}

fleet_stop() {
    # shellcheck disable=SC2086 # one pid per sshd
    [ -n "${FLEET_SSHD_PID:-}" ] && kill $FLEET_SSHD_PID 2>/dev/null
    [ -n "${FLEET_DIR:-}" ] && rm -rf "$FLEET_DIR"
    FLEET_SSHD_PID='' FLEET_DIR=''
}

# A TCP port free on loopback now.
fleet_free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Wait up to 5 s for something to listen on HOST PORT.
fleet_wait_port() {
    local _
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}

fleet_trust() {
    local h
    for h in "${FLEET_HOSTS[@]}"; do
        echo "[$h]:$1 $(cut -d' ' -f1,2 "$FLEET_DIR/host_key.pub")"
    done >>"$FLEET_DIR/home/.ssh/known_hosts"
}

fleet_inventory() {
    local per_host=$1 prefix=$2 port=${3:-$FLEET_PORT} h n=0 _
    echo "host,port,user,venv"
    for h in "${FLEET_HOSTS[@]}"; do
        for _ in $(seq 1 "$per_host"); do
            n=$((n + 1))
            echo "$h,$port,$FLEET_USER,$prefix$n"
        done
    done
}

# Venvs are slow to make with pip (ensurepip takes seconds each), so one
# template is made with pip and the wheels, and every other venv is made
# without pip and given the template's site-packages as hard links: the same
# files pip would have written, in a real venv of its own. Nothing may write
# to those files in place (pip replaces files, it does not rewrite them); a
# benchmark that installs into venvs copies them instead.
fleet_venvs() {
    local dir=$1 count=$2 missing=0 i
    shift 2
    fleet_user
    mkdir -p "$dir"
    for i in $(seq 1 "$count"); do [ -e "$dir/v$i/.ready" ] || missing=$((missing + 1)); done
    [ "$missing" -eq 0 ] && return
    echo "making $missing venvs (once; cached in $dir)" >&2
    if [ ! -e "$dir/template/.ready" ]; then
        rm -rf "$dir/template"
        "$FLEET_PYTHON" -m venv "$dir/template" || return 1
        if [ $# -gt 0 ]; then
            "$dir/template/bin/python" -m pip install --quiet --no-index \
                --disable-pip-version-check "$@" || return 1
        fi
        touch "$dir/template/.ready"
    fi
    export -f fleet_clone_venv
    export FLEET_PYTHON
    # shellcheck disable=SC2016 # expanded by the inner bash
    seq 1 "$count" | sed "s|^|$dir/v|" | xargs -P "$(nproc)" -I{} bash -c 'fleet_clone_venv "$1" "$2"' _ "$dir/template" {}
}

# A venv at $2 with the packages of the venv at $1 (see fleet_venvs), hard
# linked; with a third argument `copy`, copied (for venvs that will change).
fleet_clone_venv() {
    local template=$1 venv=$2 how=-al site script
    [ "${3:-}" = copy ] && how=-a
    [ -e "$venv/.ready" ] && return
    rm -rf "$venv"
    "$FLEET_PYTHON" -m venv --without-pip "$venv" || return 1
    site=$(cd "$template" && echo lib/python3*/site-packages)
    cp $how "$template/$site/." "$venv/$site/" || return 1
    # pip's scripts name their venv's interpreter on the #! line.
    for script in "$template"/bin/pip*; do
        sed "1s|^#!.*|#!$venv/bin/python|" "$script" >"$venv/bin/${script##*/}"
        chmod 755 "$venv/bin/${script##*/}"
    done
    touch "$venv/.ready"
}

# For the benchmarks that install into venvs: a venv put back before each
# timed run, by files, in a moment.
fleet_reset_packages() {
    local template_site=$1 prefix=$2 v site
    shift 2
    for v in "$@"; do
        site=$(echo "$v"/lib/python3*/site-packages)
        rm -rf "${site:?}/${prefix:?}"* "$site/__pycache__/$prefix"*
        cp -a "$template_site/$prefix"* "$site/"
        cp -a "$template_site/__pycache__/$prefix"* "$site/__pycache__/" 2>/dev/null || true
        chown -R "$FLEET_USER" "$site"
    done
}
