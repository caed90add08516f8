#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# `make demo`: a whole vd deployment, end to end, against a throwaway fleet on
# this machine. Two "hosts" (one sshd with fresh keys listening on 127.0.0.2
# and 127.0.0.3), one virtualenv each, still to be created; a repository
# holding the demo shop (examples/demo-shop, built here with pip) and Django's
# wheels (fetched once with pip download); then
#
#   vd-targets | vd-freeze | vd-diff | vd-push --create | vd-migrate | vd-reload
#
# and the same pipeline again, which must change nothing. The targets keep
# generations (the inventory's `generations` column): each venv path is a
# symlink, and every push builds a whole new generation beside the active
# one and switches to it atomically. Then a new release of the shop goes out
# (generation 2) and is rolled back:
#
#   vd-targets | vd-rollback | vd-reload
#
# which puts generation 1 back in place and reloads. Everything lives in
# a scratch folder removed at the end, with the sshd. The fleet is the one the
# benchmarks use (bench/fleet.sh); VD_BIN names the folder of the vd binaries
# (default target/release; a relative path is taken from the current folder).
#
# The repository carries uv, the installer vd-push prefers: its wheel is
# fetched once into the demo's cache with pip download and added with
# vd-add, and the pushes install with it (the summary says which installer
# ran). DEMO_UV=0 leaves uv out, and pip installs; so does a cache that
# cannot get the wheel (no package index), saying so.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
DEMO_UV=${DEMO_UV:-1}
VD_BIN=${VD_BIN:-$root/target/release}
case $VD_BIN in /*) ;; *) VD_BIN=$PWD/$VD_BIN ;; esac
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

for tool in vd-add vd-targets vd-freeze vd-diff vd-push vd-migrate vd-reload vd-rollback; do
    [ -x "$VD_BIN/$tool" ] || { echo "demo: no $VD_BIN/$tool: run make build (or set VD_BIN)" >&2; exit 1; }
done

# shellcheck source=../bench/fleet.sh
. "$root/bench/fleet.sh"
# What a fresh Debian machine lacks (sshd, ssh, python3 with venv): as root,
# installed here; otherwise the demo says what to install.
fleet_require python3=python3
fleet_start 2
trap fleet_stop EXIT
work=$FLEET_DIR/demo
mkdir -p "$work/dist" "$work/venvs"
# The login user creates the venvs and writes the reload log.
chown "$FLEET_USER" "$work/venvs" 2>/dev/null || true
chmod 777 "$work"

say "building the demo shop wheel and fetching Django's wheels"
cache=$root/target/demo-cache
mkdir -p "$cache"
# pip from a venv of its own, made once: Debian's python3 has no pip
# unless python3-pip is installed, and every venv has one.
if [ ! -x "$cache/pip/bin/pip" ]; then
    "$FLEET_PYTHON" -m venv "$cache/pip"
fi
pip=("$cache/pip/bin/python" -m pip --disable-pip-version-check)
if ! ls "$cache"/[Dd]jango-*.whl >/dev/null 2>&1; then
    "${pip[@]}" download -q --only-binary=:all: --python-version 3.10 -d "$cache" "Django>=4.2,<6"
fi
cp "$cache"/*.whl "$work/dist/"
# uv's wheel for this machine, apart from the shop's: it is the installer,
# not a requirement of the venvs.
installer=pip
if [ "$DEMO_UV" = 1 ]; then
    if ls "$cache"/uv/uv-*.whl >/dev/null 2>&1 ||
        "${pip[@]}" download -q --only-binary=:all: --no-deps -d "$cache/uv" uv; then
        installer=uv
    else
        echo "demo: could not fetch uv's wheel; pip installs instead" >&2
    fi
fi
cp -r "$root/examples/demo-shop" "$work/src"
"${pip[@]}" wheel -q --no-deps -w "$work/dist" "$work/src"
ls "$work/dist"

say "vd-add: the repository"
printf '%s\n' "$work"/dist/*.whl | "$VD_BIN/vd-add" --repo "$work/wheels" --json |
    python3 -c 'import json, sys
for line in sys.stdin:
    r = json.loads(line)
    print("  %-45s %s" % (r.get("wheel"), r.get("status") or r["error"]["message"]))'
if [ "$installer" = uv ]; then
    say "vd-add: uv, the installer vd-push uses where it can run"
    "$VD_BIN/vd-add" --repo "$work/wheels" "$cache"/uv/uv-*.whl
fi

# Every wheel in the repository is required: the shop and its dependencies.
for whl in "$work"/dist/*.whl; do basename "$whl" | cut -d- -f1; done > "$work/requirements.txt"

{
    echo "host,port,user,venv,settings,reload,reload_once,python,check,generations"
    for i in 0 1; do
        host=${FLEET_HOSTS[$i]}
        venv=$work/venvs/shop-$((i + 1))
        echo "$host,$FLEET_PORT,$FLEET_USER,$venv,demo_shop.settings,echo reloaded shop on $host >> $work/reloads.log,true,$FLEET_PYTHON,test -s $venv/demo-shop.sqlite3,3"
    done
} > "$work/targets.csv"
say "the inventory (targets.csv)"
cat "$work/targets.csv"

deploy() {
    "$VD_BIN/vd-targets" --inventory "$work/targets.csv" |
        "$VD_BIN/vd-freeze" |
        "$VD_BIN/vd-diff" --repo "$work/wheels" "$work/requirements.txt" |
        "$VD_BIN/vd-push" --repo "$work/wheels" --create |
        "$VD_BIN/vd-migrate" --repo "$work/wheels" |
        "$VD_BIN/vd-reload" --repo "$work/wheels"
}

summary() {
    python3 - "$1" <<'PY'
import json, sys
failed = False
for line in open(sys.argv[1]):
    r = json.loads(line)
    target = "%s:%s" % (r["host"], r["venv"])
    if "error" in r:
        failed = True
        print("  %s: ERROR from %s: %s" % (target, r["error"]["tool"], r["error"]["message"]))
        continue
    pushed = r.get("pushed") or {}
    installed = pushed.get("installed") or []
    migrated = r.get("migrated") or {}
    how = pushed.get("installer")
    generation = r.get("generation") or {}
    rolled_back = r.get("rolled_back")
    print("  %s" % target)
    print("    changed:   %s" % r.get("changed"))
    if rolled_back:
        print("    rolled back from generation %(from)s to %(to)s" % rolled_back)
    else:
        print("    installed: %s%s" % (", ".join(installed) or "nothing", " (with %s)" % how if how and installed else ""))
    if generation:
        previous = generation.get("previous")
        print("    generation %s active (previous: %s)" % (generation.get("active"), "none" if previous is None else previous))
    for module, names in migrated.items():
        print("    migrated:  %s: %s" % (module, ", ".join(names) or "nothing to apply"))
    print("    reloaded:  %s" % ("yes" if r.get("reloaded") else "no (nothing changed)"))
sys.exit(1 if failed else 0)
PY
}

say "deploy: vd-targets | vd-freeze | vd-diff | vd-push --create | vd-migrate | vd-reload"
deploy > "$work/first.jsonl" || true
summary "$work/first.jsonl"
say "the release log"
python3 - "$work/wheels/release_log" <<'PY'
import csv, sys
for row in csv.DictReader(open(sys.argv[1])):
    print("  %(time)s  %(event)-8s %(name)-12s %(version)-8s %(target)s  %(detail)s" % row)
PY

# The first deploy installed with the installer the repository offers.
python3 - "$work/first.jsonl" "$installer" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    if (r.get("pushed") or {}).get("installer") != sys.argv[2]:
        sys.exit("demo: %s was not pushed with %s" % (r.get("venv"), sys.argv[2]))
PY

say "deploy again: nothing to change"
deploy > "$work/second.jsonl" || true
summary "$work/second.jsonl"
if grep -q '"changed":true' "$work/second.jsonl"; then
    echo "demo: the second run changed something; it should not have" >&2
    exit 1
fi

# Each venv path and the generation it points at.
show_links() {
    local link
    for link in "$work"/venvs/*; do
        if [ -L "$link" ]; then echo "  $link -> $(readlink "$link")"; fi
    done
}

say "a new release of the shop (1.1), deployed: generation 2"
cp -r "$root/examples/demo-shop" "$work/src-1.1"
sed -i 's/^version = "1.0"/version = "1.1"/' "$work/src-1.1/pyproject.toml"
"${pip[@]}" wheel -q --no-deps -w "$work/dist-1.1" "$work/src-1.1"
"$VD_BIN/vd-add" --repo "$work/wheels" "$work"/dist-1.1/*.whl >/dev/null
deploy > "$work/third.jsonl" || true
summary "$work/third.jsonl"
show_links

say "roll back: vd-targets | vd-rollback | vd-reload"
"$VD_BIN/vd-targets" --inventory "$work/targets.csv" |
    "$VD_BIN/vd-rollback" --repo "$work/wheels" |
    "$VD_BIN/vd-reload" --repo "$work/wheels" > "$work/rollback.jsonl" || true
summary "$work/rollback.jsonl"
python3 - "$work/rollback.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r.get("generation", {}).get("active") != 1 or r.get("installed", {}).get("demo-shop") != "1.0":
        sys.exit("demo: %s is not back on generation 1 with demo-shop 1.0" % r.get("venv"))
PY
show_links

say "reloads (one per host: the first deploy, the release, the rollback)"
cat "$work/reloads.log"
say "done: deployed with generations (three kept per venv), released 1.1 as generation 2, rolled back to generation 1; the sshd is stopped"
