# shellcheck shell=sh
# vd-freeze's remote side for many venvs of one host: each venv's freeze,
# exactly as freeze_command would give it, and what runs from each venv
# (running.sh's scan_running, which vd puts before this text; running.py
# comes on stdin), from one command. A venv that is
# not there, is not a venv, or whose bin/python cannot run is told apart as
# freeze_command does; one with a real pyvenv.cfg and a bin/python that is a
# link goes to one run of `freeze.py --venvs` (which reads each venv's files
# with one process per real interpreter, not one per venv); any other runs
# freeze.py with its own bin/python, as the per-venv freeze does.
#
# Usage: /bin/sh -c "$(cat freeze_batch.sh)" vd-freeze TOKEN RUNNING_PY <input
#   TOKEN       a random word marking where each venv's output starts, so
#               that nothing a venv prints can pass for a mark
#   RUNNING_PY  the text of running.py: also read which processes run from
#               the venvs; empty: do not
#   input       two lines per venv: its path (absolute, no newline in it) and
#               the interpreter a new venv would get (the record's python);
#               an empty line; the text of freeze.py (on stdin, not in the
#               command, which an SSH server takes only up to about 32 KiB)
#
# Output, per venv (INDEX: its place in the input, from 0): a line
# "TOKEN INDEX out" then what its freeze printed, "TOKEN INDEX err" then what
# it said on stderr, "TOKEN INDEX status N" (its exit status); each mark line
# comes after a newline of its own. After `freeze.py --venvs`, when it said
# anything on stderr or failed: "TOKEN batch N" and what it said. A venv with
# no status line was not frozen here (vd then freezes it on its own). With
# RUNNING_PY: "TOKEN running" then what running.py printed for every venv in
# input order, and "TOKEN running-status N" then what it said on stderr;
# `freeze.py --venvs` runs the scan itself when it runs (one interpreter
# start fewer), else scan_running does.
token=$1
running_py=$2
shift 2
venvs=''
while IFS= read -r venv && [ -n "$venv" ] && IFS= read -r python; do
    venvs="$venvs$venv
$python
"
done
script=$(cat) || fail "cannot read freeze.py"
# The venvs, a line each, for the scan, and the first venv interpreter that
# runs, to run it with.
scanned='' scan_python=''

mark() {
    printf '\n%s %s\n' "$token" "$*"
}

# run INDEX COMMAND...: COMMAND with freeze.py on stdin, its output marked
# as the venv's.
run() {
    index=$1
    shift
    mark "$index" out
    { err=$(printf '%s\n' "$script" | "$@" 2>&1 >&3 3>&-); status=$?; } 3>&1
    mark "$index" err
    printf '%s' "$err"
    mark "$index" status "$status"
}

# refuse INDEX MESSAGE: what freeze_command says of a path that is no venv.
refuse() {
    mark "$1" err
    printf '%s\n' "$2"
    mark "$1" status 3
}

index=0
while IFS= read -r venv && [ -n "$venv" ] && IFS= read -r python; do
    interpreter=$venv/bin/python
    scanned="$scanned
$venv"
    if [ -z "$scan_python" ] && [ -x "$interpreter" ]; then scan_python=$interpreter; fi
    if [ ! -e "$venv" ]; then
        run "$index" "$python" -E -s - --no-installed
    elif [ -f "$interpreter" ] && [ -x "$interpreter" ]; then
        if [ -L "$interpreter" ] && [ -f "$venv/pyvenv.cfg" ]; then
            set -- "$@" "$index" "$venv"
        else
            run "$index" "$interpreter" -E -s -
        fi
    elif [ -L "$interpreter" ] || [ -e "$interpreter" ]; then
        refuse "$index" "$interpreter cannot be run here (a broken link, or no permission for this user)"
    else
        refuse "$index" "$venv exists but is not a virtualenv (it has no bin/python)"
    fi
    index=$((index + 1))
done <<EOF
$venvs
EOF

if [ $# -gt 0 ]; then
    # The first of them starts it; -S: the stdlib's sys.path, no
    # site-packages. It scans too, when asked (VD_RUNNING_PY).
    { err=$(VD_FREEZE_PY=$script VD_RUNNING_PY=$running_py VD_RUNNING_VENVS=$scanned \
        "$2/bin/python" -E -s -S -c "$script" --venvs "$token" "$@" 2>&1 >&3 3>&-); status=$?; } 3>&1
    if [ "$status" -ne 0 ] || [ -n "$err" ]; then
        mark batch "$status"
        printf '%s' "$err"
    fi
elif [ -n "$running_py" ]; then
    mark running
    # One venv per line of $scanned: split at newlines only, no globbing.
    set -f
    IFS='
'
    # shellcheck disable=SC2086
    set -- $scanned
    unset IFS
    { err=$(scan_running "$scan_python" "$@" 2>&1 >&3 3>&-); status=$?; } 3>&1
    mark running-status "$status"
    printf '%s' "$err"
fi
exit 0
