# shellcheck shell=sh
# vd-freeze's command for one venv: freeze.py (on stdin) run by the venv's
# interpreter, isolated from the user's environment (`-E -s`: Python 2.7
# has no -I). When the venv does not exist, the host's PYTHON describes the
# interpreter a new venv would get, without `installed`; when the path
# exists but has no interpreter that runs, a message on stderr and exit
# VD_EXIT_NOT_A_VENV.
#
# usage: sh -c "$(cat freeze.sh)" vd-freeze VENV PYTHON <freeze.py

venv=$1
python=$2
while [ "${venv%/}" != "$venv" ]; do venv=${venv%/}; done
interpreter=$venv/bin/python
if [ -e "$1" ]; then
    if [ -f "$interpreter" ] && [ -x "$interpreter" ]; then exec "$interpreter" -E -s -; fi
    if [ -L "$interpreter" ] || [ -e "$interpreter" ]; then
        echo "$interpreter cannot be run here (a broken link, or no permission for this user)" >&2
    else
        echo "$venv exists but is not a virtualenv (it has no bin/python)" >&2
    fi
    exit "$VD_EXIT_NOT_A_VENV"
fi
exec "$python" -E -s - --no-installed
