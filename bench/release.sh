#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# W3 of issue 31: a one-wheel release to PER_HOST venvs on each of HOSTS
# hosts (default 10 on 10: 100 venvs), in place, on the loopback fleet
# (bench/fleet.sh, which also says which user logs in), side by side in one
# run:
#   vd, uv     vd-targets | vd-freeze | vd-diff | vd-push, the repository
#              carrying uv's wheel (so vd-push installs with uv)
#   vd, pip    the same with vd-push --installer pip
#   pip floor  one `pip install --no-index --no-deps WHEEL` per venv, no SSH
#              and no tool, the hosts' venvs at once (HOSTS in parallel)
#   uv floor   the same with `uv pip install --offline` (uv's own start)
#   Ansible    the pip module (ansible-core from PyPI, in its own venv under
#              target/bench), copy of the wheel then pip with --no-index
#              --find-links; forks = HOSTS, pipelining on (ANSIBLE=0 skips)
# Every venv holds what a Django site's would: PROJECTS small projects at
# 1.0, pip, and Django's closure; the release upgrades one project to 1.1.
# Before every timed run the venvs are put back to 1.0. vd-push's caches
# are kept from a first, untimed run, as after any earlier release: the
# uv wheel is on each host already (its first upload, 17 MB per host, is a
# one-off), and the one new wheel is sent again each run (the caches'
# copies of it are removed).
# Targets: vd with uv at most 0.3x the pip floor, and at least 10x faster
# than Ansible. Medians of BENCH_RUNS runs (3 at least is meant: 5 takes
# about 10 minutes with Ansible on 2 cores); vd with pip, for comparison
# only, is run PIP_RUNS times (default BENCH_RUNS).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=lib.sh
. "$here/lib.sh"
# shellcheck source=fleet.sh
. "$here/fleet.sh"
# shellcheck source=ansible.sh
. "$here/ansible.sh"
cd "$here/.."
HOSTS=${HOSTS:-10}
PER_HOST=${PER_HOST:-10}
PROJECTS=${PROJECTS:-20}
ANSIBLE=${ANSIBLE:-1}
PIP_RUNS=${PIP_RUNS:-$BENCH_RUNS}
ANSIBLE_CORE=${ANSIBLE_CORE:-2.19.14}
DJANGO=${DJANGO:-django>=5.2,<5.3}
UV_VERSION=${UV_VERSION:-0.13.9}
bench_tools vd-add vd-targets vd-freeze vd-diff vd-push
fleet_require scp=openssh-client
fleet_user
count=$((HOSTS * PER_HOST))
cache=$PWD/target/bench
pyver=$("$FLEET_PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
progress() { echo "release: $*" >&2; }
fail() { echo "bench: $*" >&2; exit 1; }

# Downloads, once: Django's closure, uv's wheel, and Ansible in a venv.
django_wheels=$cache/django-wheels-$pyver
if [ ! -e "$django_wheels/.ready" ]; then
    rm -rf "$django_wheels"
    "$FLEET_PYTHON" -m pip download --quiet --disable-pip-version-check --only-binary :all: \
        -d "$django_wheels" "$DJANGO" || fail "could not download $DJANGO from PyPI"
    touch "$django_wheels/.ready"
fi
uv_wheels=$cache/uv-$UV_VERSION
if [ ! -e "$uv_wheels/.ready" ]; then
    rm -rf "$uv_wheels"
    python3 -m pip download --quiet --disable-pip-version-check --only-binary :all: --no-deps \
        -d "$uv_wheels" "uv==$UV_VERSION" || fail "could not download uv $UV_VERSION from PyPI"
    touch "$uv_wheels/.ready"
fi
ansible_venv=$cache/ansible-core-$ANSIBLE_CORE
if [ "$ANSIBLE" = 1 ]; then ansible_install "$ansible_venv" "$ANSIBLE_CORE"; fi

trap fleet_stop EXIT
fleet_start "$HOSTS"
work=$FLEET_DIR
remote=$work/remote
mkdir -p "$remote" "$work/t"

# Wheels and requirements: every project pinned at 1.0, but the first at 1.1.
python3 bench/make_wheels.py "$work/dist" $((PROJECTS * 2)) 2
"$VD_BIN/vd-add" --repo "$work/repo" "$work"/dist/*.whl "$uv_wheels"/*.whl >/dev/null
for i in $(seq 0 $((PROJECTS - 1))); do
    printf 'bench-pkg-%04d==1.%d\n' "$i" $((i == 0 ? 1 : 0))
done >"$work/requirements.txt"
new_wheel=$(echo "$work"/dist/bench_pkg_0000-1.1-*.whl)

# The venvs: copies of one template (they change), each host with a cache
# of its own (the hosts share this machine).
template=$cache/release-venvs-$pyver-p$PROJECTS/template
if [ ! -e "$template/.ready" ]; then
    rm -rf "$template"
    mapfile -t old < <(for i in $(seq 0 $((PROJECTS - 1))); do printf 'bench-pkg-%04d==1.0\n' "$i"; done)
    "$FLEET_PYTHON" -m venv "$template"
    "$template/bin/python" -m pip install --quiet --no-index --disable-pip-version-check \
        --find-links "$work/dist" --find-links "$django_wheels" "$DJANGO" "${old[@]}"
    touch "$template/.ready"
fi
template_site=$(echo "$template"/lib/python3*/site-packages)
fleet_inventory "$PER_HOST" "$remote/venvs/v" |
    awk -F, -v OFS=, -v d="$remote/cache-" 'NR == 1 { print $0, "cache"; next } { print $0, d $1 }' >"$work/targets.csv"
venvs=()
while IFS=, read -r _ _ _ venv _; do
    venvs+=("$venv")
    fleet_clone_venv "$template" "$venv" copy
done < <(tail -n +2 "$work/targets.csv")
chown -R "$FLEET_USER" "$remote"
reset_venvs() {
    fleet_reset_packages "$template_site" bench_pkg_0000 "${venvs[@]}"
    rm -rf "$remote"/cache-*/*/bench_pkg_0000-1.1-* "$remote"/uploads
    mkdir -p "$remote/uploads"
    chown "$FLEET_USER" "$remote/uploads"
}
# Every venv holds bench-pkg-0000 1.1, and only it.
check_venvs() {
    local v site
    for v in "${venvs[@]}"; do
        site=$(echo "$v"/lib/python3*/site-packages)
        if [ ! -e "$site/bench_pkg_0000-1.1.dist-info" ] || [ -e "$site/bench_pkg_0000-1.0.dist-info" ]; then
            echo "bench: $v does not hold bench-pkg-0000 1.1 alone" >&2
            return 1
        fi
    done
}

vd_plan() {
    "$VD_BIN/vd-targets" -i "$work/targets.csv" | "$VD_BIN/vd-freeze" |
        "$VD_BIN/vd-diff" --repo "$work/repo" "$work/requirements.txt"
}
vd_release() { # INSTALLER: vd-push's --installer
    vd_plan | "$VD_BIN/vd-push" --repo "$work/repo" --installer "$1" >"$work/out"
}
# The plan alone, of which vd-push's time is the rest.
check_plan() {
    [ "$(grep -c '"action":"upgrade"' "$work/out")" = "$count" ]
}
# What the records say: every one changed, by INSTALLER.
check_vd() { # INSTALLER
    python3 - "$work/out" "$count" "$1" <<'PY'
import json, sys
path, want, installer = sys.argv[1], int(sys.argv[2]), sys.argv[3]
records = [json.loads(l) for l in open(path)]
problems = [r["error"] for r in records if "error" in r]
problems += ["%d records, not %d" % (len(records), want)] if len(records) != want else []
problems += [r["venv"] for r in records if r.get("pushed", {}).get("installer") != installer]
if problems:
    sys.exit("bench: wrong answer: %s" % problems[:3])
PY
}
# The floors: the installer alone on each venv, HOSTS venvs at a time, in
# an environment as clean as a login's on the hosts (no PIP_* or PYTHON*
# variables of this shell: pip reads PIP_FIND_LINKS, and
# PYTHONDONTWRITEBYTECODE would spare it the bytecode vd's pip compiles).
clean=(env -i PATH=/usr/local/bin:/usr/bin:/bin HOME="$HOME" LC_ALL=C.UTF-8)
floor_pip() {
    printf '%s\n' "${venvs[@]}" | xargs -P "$HOSTS" -I{} "${clean[@]}" {}/bin/python -m pip install --quiet \
        --no-index --no-deps --disable-pip-version-check "$new_wheel"
}
uv_bin=$work/uv/bin/uv
python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' \
    "$(echo "$uv_wheels"/*.whl)" "$work/uv-wheel"
mkdir -p "$work/uv/bin"
cp "$work"/uv-wheel/uv-*.data/scripts/uv "$uv_bin"
chmod 755 "$uv_bin"
floor_uv() {
    printf '%s\n' "${venvs[@]}" | xargs -P "$HOSTS" -I{} "${clean[@]}" "$uv_bin" pip install --quiet --offline \
        --no-index --no-deps --compile-bytecode --link-mode copy --python {}/bin/python "$new_wheel"
}

# Ansible: the pip module on each venv, after a copy of the wheel.
ansible_inventory "$work/targets.csv" "$remote/uploads" >"$work/inventory.yml"
mkdir -p "$work/wanted"
cp "$new_wheel" "$work/wanted/"
ansible_configure "$work" "$HOSTS"
cat >"$work/release.yml" <<YML
- hosts: fleet
  gather_facts: false
  environment: {PIP_DISABLE_PIP_VERSION_CHECK: "1", PIP_NO_INDEX: "1"}
  tasks:
    - name: Upload the wheel
      ansible.builtin.copy:
        src: "$work/wanted/"
        dest: "{{ wheel_dir }}/"
    - name: Install it
      ansible.builtin.pip:
        name: "bench-pkg-0000==1.1"
        virtualenv: "{{ item }}"
        extra_args: "--no-index --find-links {{ wheel_dir }}"
      loop: "{{ venvs }}"
YML
export LC_ALL=C.UTF-8
ansible_release() {
    "$ansible_venv/bin/ansible-playbook" -i "$work/inventory.yml" -f "$HOSTS" "$work/release.yml" >"$work/out"
}

# once CELL COMMAND CHECK: reset, one timed run of COMMAND, then CHECK.
once() {
    local start end t
    reset_venvs
    start=$(date +%s.%N)
    eval "$2" || fail "$1: the command failed: $(head -c 2000 "$work/out" 2>/dev/null)"
    end=$(date +%s.%N)
    eval "$3" || fail "$1: wrong answer"
    t=$(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.3f", e - s }')
    echo "$t" >>"$work/t/$1"
    progress "$1: $t s"
}
times_of() { cat "$work/t/$1" 2>/dev/null || true; }

# A first run, untimed: vd-push puts uv in each host's cache.
reset_venvs
vd_release auto || fail "the first vd run failed"
check_vd uv || fail "the first vd run did not install with uv"
for ((i = 0; i < BENCH_RUNS; i++)); do
    once vd-uv "vd_release auto" "check_vd uv && check_venvs"
    once vd-plan "vd_plan >$work/out" check_plan
    if [ "$i" -lt "$PIP_RUNS" ]; then
        once vd-pip "vd_release pip" "check_vd pip && check_venvs"
    fi
    once floor-pip floor_pip check_venvs
    once floor-uv floor_uv check_venvs
    if [ "$ANSIBLE" = 1 ]; then
        once ansible "ansible_release" "check_venvs && ansible_disconnect $work"
    fi
done

bench_heading "vd-push with uv: a one-wheel release to $count venvs on $HOSTS hosts, in place (W3)"
cat <<EOF
Login user \`$FLEET_USER\`; python $pyver; uv $UV_VERSION; binaries $VD_BIN.
Every venv holds $PROJECTS small projects, pip and Django's closure; the release
upgrades one of them. vd is the whole pipeline (vd-targets | vd-freeze |
vd-diff | vd-push), with uv's wheel already in each host's cache.

EOF
bench_runs_header
row() { # LABEL CELL
    local t
    mapfile -t t < <(times_of "$2")
    [ "${#t[@]}" -gt 0 ] && bench_runs_row "$1" "${t[@]}"
    return 0
}
row "vd, uv" vd-uv
row "vd, uv: the plan alone (vd-targets | vd-freeze | vd-diff)" vd-plan
row "vd, pip (--installer pip)" vd-pip
row "pip floor: pip install per venv, $HOSTS at a time" floor-pip
row "uv floor: uv pip install per venv, $HOSTS at a time" floor-uv
row "Ansible's pip module (ansible-core $ANSIBLE_CORE)" ansible
median() { local t; mapfile -t t < <(times_of "$1"); bench_median "${t[@]}"; }
bench_ratios_header
bench_ratio_row "vd, uv / pip floor" "$(median vd-uv)" "$(median floor-pip)" "<=" 0.3
bench_ratio_row "vd, pip / pip floor" "$(median vd-pip)" "$(median floor-pip)"
bench_ratio_row "vd, uv / uv floor" "$(median vd-uv)" "$(median floor-uv)"
if [ "$ANSIBLE" = 1 ]; then
    bench_ratio_row "Ansible / vd, uv" "$(median ansible)" "$(median vd-uv)" ">=" 10
fi
