# shellcheck shell=sh
# vd-push's change to one venv, on the host, as the venv's user.
#
# Under an exclusive flock on VENV/.vd-lock: make the venv if asked, check
# every wheel file can be read, then one process of the venv's python
# (freeze.py --around) freezes, checks the freeze is the state the plan was
# made from, runs STEP (push_step.sh: uninstall, install), and freezes
# again: one interpreter start for the three.
# Everything comes in as arguments, never as text put into this script:
#
# usage: sh -c "$(cat push.sh)" vd-push VENV LOCK_WAIT CREATE_WITH \
#            PLANNED_FROM INSTALLER STEP NREMOVE [NAME ...] [FILE ...] <freeze.py
#   VENV         the virtualenv (absolute, no trailing slash)
#   LOCK_WAIT    seconds to wait for another push's lock
#   CREATE_WITH  the python to make the venv with when it has none (`-m
#                venv`; a Python 2 `-m virtualenv`); empty: the venv must
#                exist
#   PLANNED_FROM the fingerprints of the state the plan was made from and of
#                the state it makes (space-separated); empty: not checked
#   INSTALLER    the uv binary that installs and uninstalls; empty: pip
#   STEP         the program (push_step.sh) that uninstalls and installs
#   NREMOVE      how many NAMEs follow: the packages to uninstall
#   FILE         the wheel files to install, with one installer call
#   stdin        the freeze script
#
# stdout: `vd-created` when the venv was made; `vd-before` and the first
# freeze's JSON; `vd-drifted` (and nothing more is done) when that freeze is
# not the state planned from; `vd-pip UNINSTALL INSTALL` (the installer's exit
# statuses, 0 for a step not run) and the second freeze's JSON. The
# installer's output goes to stderr.
# A failure before the installer runs prints a message on stderr, no
# `vd-pip` line, and exits VD_EXIT_FAILED (the prelude's `fail`).

venv=$1 lock_wait=$2 create_with=$3 planned_from=$4 installer=$5 step=$6 nremove=$7
shift 7
take_freeze "$venv/.vd-freeze.pyc"
python=$venv/bin/python

# check_files N ARGS...: fail unless every file (what follows the first N
# of ARGS) is a readable wheel of the cache, as it was uploaded.
check_files() {
    shift $(($1 + 1))
    cached_wheels "$@"
}

# make_venv: `-m venv` (Python 3.3 and newer). Python 2 has no venv module:
# it takes `-m virtualenv` (releases before 21 run on 2.7) when it has it,
# else the message says what to install. The interpreter itself decides.
make_venv() {
    if "$create_with" -c 'import sys; sys.exit(sys.version_info[0] != 2)' </dev/null 2>/dev/null; then
        "$create_with" -c 'import virtualenv' </dev/null 2>/dev/null ||
            fail "$create_with is Python 2, which has no venv module, and virtualenv is not" \
                "installed for it: install it on the host ($create_with -m pip install" \
                "'virtualenv<21'), or name a Python 3 in the target's python"
        "$create_with" -m virtualenv --quiet "$venv"
    else
        "$create_with" -m venv "$venv"
    fi
}

if [ -n "$create_with" ]; then
    mkdir -p "$venv" || fail "cannot make $venv"
elif [ ! -d "$venv" ]; then
    fail "$venv does not exist (vd-push --create makes it; run vd-freeze again first)"
fi
lock "$venv/.vd-lock" "$lock_wait"

created=
if [ -n "$create_with" ] && [ ! -e "$python" ]; then
    make_venv </dev/null 1>&2 || fail "$create_with could not make the venv $venv"
    echo vd-created
    created=1
fi
check_files "$nremove" "$@"
# A venv this push made was absent, as planned; any other must be as it was
# when the plan was made, or nothing is done.
accept=$planned_from
if [ -n "$created" ]; then accept=''; fi
freeze_py "$python" "$venv" --around "$accept" \
    /bin/sh -c "$step" vd-push "$installer" "$python" "$nremove" "$@" ||
    fail "the freeze of $venv failed"
