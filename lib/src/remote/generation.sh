# shellcheck shell=sh disable=SC2154
# (venv, gens, base and active are set by generations.sh, and
# take_running and scan_running by running.sh, which vd puts before this
# text.)
# vd-push's change to a target with generations, on the host, as the venv's
# user: a new generation built beside the active one, checked, then switched
# to with one rename(2). The layout, and which generations count, are
# generations.sh's.
#
# Under an exclusive flock on VENV.generations/.vd-lock: adopt a plain venv
# as a generation if asked (pinned and marked like one built here), remove
# the generations whose build never finished, freeze the active generation
# and check it is the state the plan was made from, then build
# VENV.generations/M (M: one past the highest number ever there). The cheap
# way: M starts as a copy of the active generation whose files are
# reflinks or hard links (generation_copy.py gives M a private copy of
# every file an installer may write, and makes right what names the
# active one's path), and only the plan's changes are uninstalled and
# installed; where it cannot be (the first generation, one vd-push did not
# build or whose interpreter changed, a plan that changes most packages, a
# failed copy) the script says why and builds nothing, and vd-push runs it
# again the full way with every wheel: a new venv made with the active
# one's interpreter and every wheel of the new set installed with one call
# of the installer (uv or pip). Either way: freeze M, check it holds exactly
# the new set, mark it built by vd-push (.vd-built: its interpreter) and
# finished, point VENV at it (a new link renamed over the old one), and
# remove the oldest generations beyond KEEP, never the new one, the one
# before it, or one a process still runs from. A failed build is removed
# and the active generation is left as it was.
#
# usage: sh -c "$(cat generation.sh)" vd-push VENV LOCK_WAIT KEEP ADOPT \
#            CREATE_WITH ACCEPT HOLDS ID INSTALLER WAY [FILE ...] \
#            <scripts
#   scripts      freeze.py, the line `vd-running.py`, running.py, the line
#                `vd-generation-copy.py`, generation_copy.py (which plans and
#                fixes a copy)
#   KEEP         how many generations to keep (2 or more)
#   ADOPT        1: a plain venv at VENV becomes the next generation
#   CREATE_WITH  the python to make the first generation with when VENV does
#                not exist; empty: it must exist
#   ACCEPT       the fingerprints of the state the plan was made from and
#                of the state it makes (space-separated); empty: not checked
#   HOLDS        NAME==VERSION of each package the new generation must hold
#                (space-separated; pip, setuptools and wheel may be there too)
#   ID           the push's intent, noted with its switch (see switch_to)
#   INSTALLER    the uv binary that installs the new generation; empty: pip
#   WAY          `copy`: build the new generation as a copy of the active one,
#                or say why not and build nothing; `full`: build it in full
#   FILE         the wheel files: with `copy`, those of the plan's changes;
#                with `full`, every wheel of the new set
#
# stdout, a line per step: `vd-adopted N`; `vd-active N`, then `vd-before`
# and the active generation's freeze; `vd-drifted` (it is not the planned
# state: nothing done) or `vd-done` (it already is what the plan makes:
# nothing done); `vd-generation M`; with WAY copy, `vd-copy N` (M is a copy
# of generation N), or `vd-full WHY` (no copy was tried) or `vd-uncopied
# WHY` (the copy failed and was removed), which end the script; `vd-built
# CREATE INSTALL` (exit statuses; 0 0 for a copy); the new generation's
# freeze; `vd-discarded M` (not switched to,
# removed) or `vd-switched M`, `vd-busy N PID...` for each generation kept
# because processes run from it, and `vd-pruned [N ...]`. pip's output goes to
# stderr. A failure before the build prints a message on stderr and exits
# VD_EXIT_FAILED.

generations_of "$1"
lock_wait=$2 keep=$3 adopt=$4 create_with=$5 accept=$6 holds=$7 id=$8 installer=$9
shift 9
way=$1
shift
take_freeze "$gens/.vd-freeze.pyc"
take_running
# generation_copy.py, which vd sends after running.py, past a line
# `vd-generation-copy.py`.
copier=$(printf '%s\n' "$running_py" | sed '1,/^vd-generation-copy\.py$/d')
running_py=$(printf '%s\n' "$running_py" | sed '/^vd-generation-copy\.py$/,$d')
# What each generation carries in its site-packages: a process started
# through VENV resolves its import paths once, so it keeps importing from
# the generation it started in after a switch.
pin='import os, sys; sys.path[:] = [os.path.realpath(p) if p else p for p in sys.path]'

# The generation in folder $1 gets its vd_generation.pth: the pin above,
# and the mark of the processes that start in it, a descriptor on its
# .vd-running, which vd reads in /proc to tell which generation runs
# (running.py --mark writes the line).
mark_generation() {
    site=$("$1/bin/python" -E -s -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') ||
        return 1
    : >"$1/.vd-running" || return 1
    mark=$(scan_running "$1/bin/python" --mark "$1/.vd-running") || return 1
    # A new file renamed into place: a copied generation may still share
    # the name's old inode with the generation it was copied from.
    printf '%s\n%s\n' "$pin" "$mark" >"$site/vd_generation.pth.vd-new" &&
        mv -f "$site/vd_generation.pth.vd-new" "$site/vd_generation.pth"
}

mkdir -p "$gens" || fail "cannot make $gens"
lock "$gens/.vd-lock" "$lock_wait"
# The number of the next generation: past every folder there ever was, so
# a number a cut-off build had is not given to another.
last=$(folders | tail -n 1)

active=
if [ -L "$venv" ]; then
    read_active
elif [ -d "$venv" ]; then
    [ -x "$venv/bin/python" ] || fail "$venv exists but is not a virtualenv (it has no bin/python)"
    [ "$adopt" = 1 ] ||
        fail "$venv is a plain virtualenv, not a symlink to a generation: vd-push --adopt makes" \
            "it the first generation (it moves to $gens)"
    active=$((${last:-0} + 1))
    last=$active
    # The one moment VENV is absent: between this rename and the next.
    mv "$venv" "$gens/$active" || fail "cannot move $venv to $gens/$active"
    # Pinned and marked like a generation vd built, so that a process
    # started in it after a rollback keeps its imports there and is known
    # to run it; a venv that cannot take the file is adopted without.
    mark_generation "$gens/$active" ||
        echo "vd-push: $gens/$active has no vd_generation.pth: its processes are not marked" >&2
    if ! { mark_finished "$active" && switch_to "$active" ""; }; then
        fail "cannot point $venv at $gens/$active (the venv is there now)"
    fi
    echo "vd-adopted $active"
elif [ -e "$venv" ]; then
    fail "$venv exists but is not a virtualenv"
elif [ -z "$create_with" ]; then
    fail "$venv does not exist (vd-push --create makes its first generation; run vd-freeze again first)"
fi

# Builds a killed push left: never switched to, never to be.
rm -rf "$gens/.vd-copy" "$gens/.vd-probe"
for n in $(folders); do
    if [ "$n" != "$active" ] && ! finished "$n"; then rm -rf "${gens:?}/$n"; fi
done

if [ -n "$active" ]; then
    echo "vd-active $active"
    python=$gens/$active/bin/python
    # Not the state planned from, nor (by the fingerprint) the one the plan
    # makes, it may still hold exactly the new set (pip, setuptools and
    # wheel aside: a new venv brings its own): freeze_py says so too.
    if [ -n "$accept" ]; then
        before=$(freeze_py "$python" "$gens/$active" --venv "$accept" "$holds")
    else
        before=$(freeze_py "$python" "$gens/$active" --venv '')
    fi
    state=$?
    case $state in
    0 | "$VD_EXIT_MADE" | "$VD_EXIT_DRIFTED") ;;
    *) fail "the freeze of generation $active failed (exit status $state)" ;;
    esac
    echo vd-before
    printf '%s\n' "$before"
    case $state in
    "$VD_EXIT_DRIFTED")
        echo vd-drifted
        exit 0
        ;;
    "$VD_EXIT_MADE")
        echo vd-done
        exit 0
        ;;
    esac
    create_with=$(readlink -f "$python") || fail "cannot resolve $python"
fi
new=$((${last:-0} + 1))
dir=$gens/$new
copy=$gens/.vd-copy
echo "vd-generation $new"

discard() {
    rm -rf "${dir:?}"
    echo "vd-discarded $new"
    exit 0
}

# copy_refusal: why the active generation cannot be the start of the new
# one, on stdout; nothing when it can. Only a generation vd-push built is
# copied (an adopted venv may hold what no wheel installed), and only while
# its interpreter is the one it was built with, which .vd-built names.
copy_refusal() {
    if [ -z "$active" ]; then
        echo "there is no generation to copy"
    elif ! [ -f "$gens/$active/.vd-built" ]; then
        echo "generation $active was not built by vd-push (adopted, or built before vd-push" \
            "marked its builds)"
    elif [ "$(cat "$gens/$active/.vd-built")" != "$create_with" ]; then
        echo "generation $active was built with $(cat "$gens/$active/.vd-built"), and runs" \
            "$create_with now"
    fi
}

# copy_tree FROM TO: TO made a copy of the folder FROM whose files share
# FROM's blocks (reflinks, where the filesystem has them) or are FROM's
# inodes (hard links).
copy_tree() {
    rm -f "$gens/.vd-probe"
    if cp --reflink=always "$1/pyvenv.cfg" "$gens/.vd-probe" 2>/dev/null; then
        rm -f "$gens/.vd-probe"
        cp -a --reflink=always "$1" "$2" && return
        rm -rf "$2"
    fi
    cp -al "$1" "$2"
}

# build_copy FILE...: build generation $new as a copy of the active one with
# only the plan's changes installed, and check it holds the new set; else
# `why` says what failed, and `full` is set when no copy was tried. The
# copy is made under a name that is no generation's, and loses the marks
# of a finished build (.vd-finished, vd_generation.pth) before it takes its
# number: a cut-off copy is removed by the next push, never switched to.
build_copy() {
    from=$gens/$active
    changes=$(printf '%s\n' "$before" | "$from/bin/python" -E -s -c "$copier" plan "$holds" "$@")
    case $? in
    0) ;;
    3) why=$changes full=1 && return 1 ;;
    *) why="the plan of the copy failed" && return 1 ;;
    esac
    set --
    removes=
    while IFS= read -r line; do
        case $line in
        "install "*) set -- "$@" "${line#install }" ;;
        "remove "*) removes="$removes ${line#remove }" ;;
        esac
    done <<CHANGES
$changes
CHANGES
    # Only the wheels installed are read, so only they are checked.
    cached_wheels "$@"
    rm -rf "$copy"
    copy_tree "$from" "$copy" || { why="cannot copy $from" && return 1; }
    rm -f "$copy/.vd-finished" "$copy/.vd-running" "$copy/.vd-built" \
        "$copy"/lib/python*/site-packages/vd_generation.pth
    mv "$copy" "$dir" || { why="cannot rename $copy to $dir" && return 1; }
    "$dir/bin/python" -E -s -c "$copier" fix "$from" "$dir" "$@" </dev/null 1>&2 ||
        { why="cannot give the copy files of its own" && return 1; }
    if [ -n "$removes" ]; then
        # shellcheck disable=SC2086 # package names: no blanks, no patterns
        uninstall_packages "$installer" "$dir/bin/python" $removes ||
            { why="the uninstall of$removes from the copy failed" && return 1; }
    fi
    if [ $# -gt 0 ]; then
        install_wheels "$installer" "$dir/bin/python" "$@" ||
            { why="the install into the copy failed (exit status $?)" && return 1; }
    fi
    after=$(freeze_py "$dir/bin/python" "$dir" --venv '' "$holds")
    case $? in
    "$VD_EXIT_MADE") ;;
    "$VD_EXIT_DRIFTED") why="the copy does not hold the new set" && return 1 ;;
    *) why="the freeze of the copy failed" && return 1 ;;
    esac
}

# WAY copy: a copy of the active generation when it can be trusted and the
# plan changes little of it; else, or when the copy fails, nothing is built
# and the reason is printed, for vd-push to send every wheel of the new set
# and ask for the full way: a new venv with all of them installed, as the
# first generation is built.
if [ "$way" = copy ]; then
    why=$(copy_refusal) full=1
    if [ -z "$why" ]; then
        full=
        build_copy "$@" || rm -rf "${dir:?}" "${copy:?}"
    fi
    if [ -n "$why" ]; then
        if [ -n "$full" ]; then echo "vd-full $why"; else echo "vd-uncopied $why"; fi
        exit 0
    fi
    echo "vd-copy $active"
    echo "vd-built 0 0"
    printf '%s\n' "$after"
else
    cached_wheels "$@"
    create_status=0 install_status=0
    "$create_with" -m venv "$dir" </dev/null 1>&2 || create_status=$?
    if [ "$create_status" = 0 ] && [ $# -gt 0 ]; then
        install_wheels "$installer" "$dir/bin/python" "$@" || install_status=$?
    fi
    echo "vd-built $create_status $install_status"
    if [ "$create_status" != 0 ] || [ "$install_status" != 0 ]; then discard; fi
    after=$(freeze_py "$dir/bin/python" "$dir" --venv '' "$holds")
    held=$?
    case $held in "$VD_EXIT_MADE" | "$VD_EXIT_DRIFTED") ;; *) discard ;; esac
    printf '%s\n' "$after"
    [ "$held" = "$VD_EXIT_MADE" ] || discard
fi
mark_generation "$dir" || discard
# The interpreter the generation runs, resolved as `create_with` is for the
# active generation, which `copy_refusal` compares.
readlink -f "$dir/bin/python" >"$dir/.vd-built" || discard
mark_finished "$new" || discard

switch_to "$new" "$id" || {
    rm -rf "${dir:?}"
    fail "cannot point $venv at $dir; generation $active stays active"
}
echo "vd-switched $new"

# The generations past the KEEP newest, but for the new one and the one
# before it. One some process still runs from is kept (vd-busy N PID...),
# and pruned by the first push after its processes end; the scan of
# processes runs only when there is a generation to prune.
old=$(numbers | sort -rn | sed "1,${keep}d" | grep -vx -e "$new" -e "${active:-0}")
busy=
if [ -n "$old" ]; then busy=$(scan_running "$dir/bin/python" --busy "$venv") || busy=; fi
pruned=
for n in $old; do
    pids=$(printf '%s\n' "$busy" | while read -r gen pid; do
        if [ "$gen" = "$n" ]; then printf ' %s' "$pid"; fi
    done)
    if [ -n "$pids" ]; then
        echo "vd-busy $n$pids"
    else
        rm -rf "${gens:?}/$n" && pruned="$pruned $n"
    fi
done
echo "vd-pruned$pruned"
