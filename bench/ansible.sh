# shellcheck shell=bash
# Ansible as the benchmarks run it against the loopback fleet
# (bench/fleet.sh): ansible-core from PyPI in a venv of its own, an
# inventory made from a targets.csv, and one configuration. Sourced, not
# run; bash only.
#
#   ansible_install VENV VERSION
#                           ansible-core VERSION in VENV, installed once
#   ansible_inventory CSV UPLOADS
#                           the inventory (JSON, which Ansible reads as
#                           YAML) of the targets of CSV on stdout: each host
#                           with its venvs and `wheel_dir` UPLOADS/HOST, and
#                           FLEET_PYTHON by absolute path (one the login user
#                           may run) for Ansible's modules on the targets
#   ansible_configure DIR FORKS
#                           write DIR/ansible.cfg (FORKS forks, pipelining
#                           on, SSH masters under DIR/ansible/cp) and export
#                           ANSIBLE_CONFIG
#   ansible_disconnect DIR  end the SSH masters Ansible keeps for 60 s, so
#                           that every run connects afresh, as vd's do

ansible_install() {
    local venv=$1 version=$2
    [ -e "$venv/.ready" ] && return
    echo "installing ansible-core $version into $venv" >&2
    rm -rf "$venv"
    "$FLEET_PYTHON" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "ansible-core==$version" || {
        echo "bench: could not install ansible-core $version from PyPI" >&2
        return 1
    }
    touch "$venv/.ready"
}

ansible_inventory() {
    python3 - "$1" "$HOME/.ssh" "$(command -v "$FLEET_PYTHON")" "$2" <<'PY'
import csv, json, sys
path, ssh, python, uploads = sys.argv[1:]
hosts = {}
for row in csv.DictReader(open(path)):
    host = hosts.setdefault(row["host"], {
        "ansible_host": row["host"], "ansible_port": int(row["port"]),
        "wheel_dir": f"{uploads}/{row['host']}", "venvs": []})
    host["venvs"].append(row["venv"])
    user = row["user"]
print(json.dumps({"fleet": {"hosts": hosts, "vars": {
    "ansible_user": user,
    "ansible_python_interpreter": python,
    "ansible_ssh_private_key_file": f"{ssh}/id_ed25519",
    "ansible_ssh_common_args": f"-F /dev/null -o UserKnownHostsFile={ssh}/known_hosts -o StrictHostKeyChecking=yes",
}}}, indent=1))
PY
}

ansible_configure() {
    mkdir -p "$1/ansible/tmp" "$1/ansible/cp"
    cat >"$1/ansible.cfg" <<CFG
[defaults]
forks = $2
host_key_checking = True
gathering = explicit
local_tmp = $1/ansible/tmp
retry_files_enabled = False
[ssh_connection]
pipelining = True
control_path_dir = $1/ansible/cp
CFG
    export ANSIBLE_CONFIG=$1/ansible.cfg
}

ansible_disconnect() {
    local socket
    for socket in "$1"/ansible/cp/*; do
        [ -S "$socket" ] && ssh -o ControlPath="$socket" -O exit dummy 2>/dev/null
    done
    return 0
}
