# shellcheck shell=sh disable=SC2154
# (freeze is set by the prelude's take_freeze; running_py, by the script
# that calls scan_running.)
# What runs from venvs on this host: running.py, run by whichever
# interpreter the host has, as the user the script runs as (it sees the
# processes that user may read; running.py counts the others). For
# vd-freeze's batch, generation.sh's pruning, and the scan of one target.

# take_running: cut what came on stdin ($freeze) at the line
# `vd-running.py`: freeze.py before it stays in $freeze, running.py after
# it goes to $running_py. Both scripts come on stdin: a command holding
# them would pass the length an SSH server takes.
# (sed, not the shell's ${x%%pattern*}, which takes seconds on a text this
# long in dash.)
take_running() {
    running_py=$(printf '%s\n' "$freeze" | sed '1,/^vd-running\.py$/d')
    freeze=$(printf '%s\n' "$freeze" | sed '/^vd-running\.py$/,$d')
}

# scan_running PYTHON ARG...: running.py with ARGs (see its header), run by
# PYTHON when it runs, else by the host's python3, python or python2; `-S`:
# only the standard library, so a venv's own .pth files play no part.
scan_running() {
    first=$1
    shift
    for py in "$first" python3 python python2; do
        if [ -n "$py" ] && command -v "$py" >/dev/null 2>&1; then
            "$py" -E -s -S -c "$running_py" "$@"
            return
        fi
    done
    echo "no python on this host to read which processes run from $*" >&2
    return "$VD_EXIT_FAILED"
}
