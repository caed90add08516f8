# shellcheck shell=sh
# vd-push's change to a target with generations, on the host, as the venv's
# user: a new generation built beside the active one, checked, then switched
# to with one rename(2).
#
# VENV is a symlink to BASE.generations/N (BASE: VENV's last component),
# the active generation N. Under an exclusive flock on
# VENV.generations/.vd-lock: adopt a plain venv as a generation if asked,
# freeze the active generation and check it is the state the plan was made
# from, make a new venv VENV.generations/M (M: one past the highest) with the
# active one's interpreter, install every wheel of the new set with one pip
# call, freeze it, check it holds exactly that set, point VENV at it (a new
# link renamed over the old one), and remove the oldest generations beyond
# KEEP, never the new one or the one before it. A failed build is removed
# and the active generation is left as it was.
#
# usage: sh -c "$(cat generation.sh)" vd-push VENV LOCK_WAIT KEEP ADOPT \
#            CREATE_WITH ACCEPT FINGERPRINT HOLDS [FILE ...] <freeze.py
#   KEEP         how many generations to keep (2 or more)
#   ADOPT        1: a plain venv at VENV becomes the next generation
#   CREATE_WITH  the python to make the first generation with when VENV does
#                not exist; empty: it must exist
#   ACCEPT       the fingerprints of the state the plan was made from and
#                of the state it makes (space-separated); empty: not checked
#   FINGERPRINT  the program (fingerprint.py) that checks freezes
#   HOLDS        NAME==VERSION of each package the new generation must hold
#                (space-separated; pip, setuptools and wheel may be there too)
#   FILE         the wheel files of the new generation, for one pip call
#
# stdout, a line per step: `vd-adopted N`; `vd-active N`, then `vd-before`
# and the active generation's freeze; `vd-drifted` (it is not the planned
# state: nothing done) or `vd-done` (it already is what the plan makes:
# nothing done); `vd-generation M`; `vd-built CREATE INSTALL` (exit
# statuses); the new generation's freeze; `vd-discarded M` (not switched to,
# removed) or `vd-switched M` and `vd-pruned [N ...]`. pip's output goes to
# stderr. A failure before the build prints a message on stderr and exits 5.

set -u
venv=$1 lock_wait=$2 keep=$3 adopt=$4 create_with=$5 accept=$6 fingerprint=$7 holds=$8
shift 8
cd / && umask 022 && freeze=$(cat) || exit 5
gens=$venv.generations
base=${venv##*/}
lock=$gens/.vd-lock
# What each generation carries in its site-packages: a process started
# through VENV resolves its import paths once, so it keeps importing from
# the generation it started in after a switch.
pin='import os, sys; sys.path[:] = [os.path.realpath(p) if p else p for p in sys.path]'

fail() {
    echo "$*" >&2
    exit 5
}

pip() {
    py=$1
    shift
    "$py" -m pip --isolated --disable-pip-version-check --no-input --no-cache-dir "$@" \
        </dev/null 1>&2
}

run_freeze() {
    printf '%s\n' "$freeze" | "$1" -E -s -
}

# The numbers of the generations there are, lowest first.
numbers() {
    for dir in "$gens"/[0-9]*; do
        case ${dir##*/} in *[!0-9]*) continue ;; esac
        if [ -d "$dir" ]; then echo "${dir##*/}"; fi
    done | sort -n
}

# switch N: point VENV at generation N with one rename(2) of a new link
# over the old one, so VENV is never absent.
switch() {
    rm -f "$venv.vd-new" &&
        ln -s "$base.generations/$1" "$venv.vd-new" &&
        mv -T "$venv.vd-new" "$venv"
}

readable() {
    for file; do
        [ -r "$file" ] || fail "$file cannot be read by $(id -un): every directory of the" \
            "cache must be searchable, and its files readable, by the venv's user (set the" \
            "target's cache to such a directory)"
    done
}

mkdir -p "$gens" || exit 5
command -v flock >/dev/null 2>&1 ||
    fail "flock is not installed on this host (util-linux): vd-push locks the venv with it"
[ -e "$lock" ] || : >>"$lock" || exit 5
exec 9<"$lock" || exit 5
flock -w "$lock_wait" 9 || fail "another push has held the lock $lock for ${lock_wait}s; gave up"

active=
if [ -L "$venv" ]; then
    link=$(readlink "$venv") || exit 5
    case $link in
    "$base.generations/"*) active=${link##*/} ;;
    *) fail "$venv is a symlink to $link, not into $base.generations: vd does not manage it" ;;
    esac
    [ -x "$gens/$active/bin/python" ] ||
        fail "$venv points at generation $active, which has no bin/python"
elif [ -d "$venv" ]; then
    [ -x "$venv/bin/python" ] || fail "$venv exists but is not a virtualenv (it has no bin/python)"
    [ "$adopt" = 1 ] ||
        fail "$venv is a plain virtualenv, not a symlink to a generation: vd-push --adopt makes" \
            "it the first generation (it moves to $gens)"
    last=$(numbers | tail -n 1)
    active=$((${last:-0} + 1))
    # The one moment VENV is absent: between this rename and the next.
    mv "$venv" "$gens/$active" || fail "cannot move $venv to $gens/$active"
    switch "$active" || fail "cannot point $venv at $gens/$active (the venv is there now)"
    echo "vd-adopted $active"
elif [ -e "$venv" ]; then
    fail "$venv exists but is not a virtualenv"
elif [ -z "$create_with" ]; then
    fail "$venv does not exist (vd-push --create makes its first generation; run vd-freeze again first)"
fi

if [ -n "$active" ]; then
    echo "vd-active $active"
    python=$gens/$active/bin/python
    echo vd-before
    before=$(run_freeze "$python") || exit 5
    printf '%s\n' "$before"
    if [ -n "$accept" ]; then
        printf '%s\n' "$before" | "$python" -E -s -c "$fingerprint" "$accept"
        case $? in
        0) ;;
        3)
            # Not the state planned from, nor (by the fingerprint) the one the
            # plan makes; it may still hold exactly the new set (pip,
            # setuptools and wheel aside: a new venv brings its own).
            if printf '%s\n' "$before" | "$python" -E -s -c "$fingerprint" --holds "$holds"; then
                echo vd-done
            else
                echo vd-drifted
            fi
            exit 0
            ;;
        4)
            echo vd-done
            exit 0
            ;;
        *) fail "the check of $venv against the plan's fingerprint failed" ;;
        esac
    fi
    create_with=$(readlink -f "$python") || fail "cannot resolve $python"
fi
readable "$@"

last=$(numbers | tail -n 1)
new=$((${last:-0} + 1))
dir=$gens/$new
echo "vd-generation $new"

discard() {
    rm -rf "${dir:?}"
    echo "vd-discarded $new"
    exit 0
}

create_status=0 install_status=0
"$create_with" -m venv "$dir" </dev/null 1>&2 || create_status=$?
if [ "$create_status" = 0 ] && [ $# -gt 0 ]; then
    pip "$dir/bin/python" install --no-index --no-deps "$@" || install_status=$?
fi
echo "vd-built $create_status $install_status"
if [ "$create_status" != 0 ] || [ "$install_status" != 0 ]; then discard; fi
after=$(run_freeze "$dir/bin/python") || discard
printf '%s\n' "$after"
printf '%s\n' "$after" | "$dir/bin/python" -E -s -c "$fingerprint" --holds "$holds" || discard
site=$("$dir/bin/python" -E -s -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') ||
    discard
printf '%s\n' "$pin" >"$site/vd_generation.pth" || discard

switch "$new" || {
    rm -rf "${dir:?}"
    fail "cannot point $venv at $dir; generation $active stays active"
}
echo "vd-switched $new"

count=0 pruned=
for n in $(numbers | sort -rn); do
    count=$((count + 1))
    if [ "$count" -gt "$keep" ] && [ "$n" != "$new" ] && [ "$n" != "$active" ]; then
        rm -rf "${gens:?}/$n" && pruned="$pruned $n"
    fi
done
echo "vd-pruned$pruned"
