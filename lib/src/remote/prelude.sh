# shellcheck shell=sh
# The start of every shell program vd sends to a host; vd puts it before the
# script's own text, after the exit statuses it names (VD_EXIT_*, set from
# crate::remote::exit, so the script and the parser of what it prints agree
# on them). A script runs from `/` (the login user's current directory may
# be one the venv's user cannot enter), makes files others can read (the
# venv's user reads the cache the login user writes), and treats an unset
# variable as a mistake.

set -u
cd / || exit "$VD_EXIT_FAILED"
umask 022

# fail MESSAGE...: give up: MESSAGE on stderr, exit status VD_EXIT_FAILED.
fail() {
    echo "$*" >&2
    exit "$VD_EXIT_FAILED"
}

# lock FILE SECONDS: take an exclusive flock on FILE (made when missing) for
# the rest of the script, waiting up to SECONDS for another holder. It is
# held on file descriptor 9, which children inherit: a pip this script
# started keeps the lock until it ends, even when the script is killed.
lock() {
    command -v flock >/dev/null 2>&1 ||
        fail "flock is not installed on this host (util-linux): vd locks the venv with it"
    [ -e "$1" ] || : >>"$1" || fail "cannot make the lock file $1"
    exec 9<"$1" || fail "cannot open the lock file $1"
    flock -w "$2" 9 || fail "another push has held the lock $1 for ${2}s; gave up"
}

# take_freeze [CACHE]: read freeze.py, which the script is sent on stdin,
# for `run_freeze` and `freeze_py`; CACHE: where freeze_py keeps its
# compiled code (a file beside the script's lock, the venv user's).
take_freeze() {
    freeze=$(cat) || fail "cannot read the freeze script"
    freeze_cache=${1:-}
}

# run_freeze PYTHON: freeze.py run by PYTHON, isolated from the user's
# environment as vd-freeze runs it: `-E -s`, since Python 2.7 has no -I (the
# script drops the current directory from sys.path itself).
run_freeze() {
    printf '%s\n' "$freeze" | "$1" -E -s -
}

# freeze_py PYTHON VENV MODE ARGS...: freeze.py's MODE on VENV, by PYTHON:
# --venv ACCEPT [HOLDS], VENV's freeze and its check against a plan's
# fingerprints ACCEPT and the set HOLDS; --around ACCEPT COMPILE COMMAND...,
# the freezes of a push around COMMAND (see freeze.py for both). One
# interpreter start, without site.py where VENV has a pyvenv.cfg and
# PYTHON is a link, as freeze_batch.sh reads such a venv; else PYTHON with
# its site.py (MODE-own: a Python 2 virtualenv's python finds even its
# standard library through its own site.py). The exit status of --venv
# says which state VENV is in: 0 the state planned from, VD_EXIT_MADE the
# state the plan makes, VD_EXIT_DRIFTED neither.
# Without site.py, freeze.py's code comes from take_freeze's CACHE, as
# PYTHON compiled it the last time (see freeze_loader): compiling it is a
# third of the start.
freeze_py() {
    py=$1 dir=$2 mode=$3
    shift 3
    if [ -L "$py" ] && [ -f "$dir/pyvenv.cfg" ]; then
        VD_FREEZE_PY=$freeze "$py" -E -s -S -c "$freeze_loader" "$freeze_cache" "$mode" "$dir" "$@" </dev/null
    else
        VD_FREEZE_PY=$freeze "$py" -E -s -c "$freeze" "$mode-own" "$dir" "$@" </dev/null
    fi
}

# Runs freeze.py (VD_FREEZE_PY) with the arguments after the first, which
# names a file of its compiled code: used when it was compiled from this
# very text by this very interpreter (the first line says so: the text's
# length and CRC-32, and the interpreter's cache tag), else compiled and
# written there for the next run (a temporary file renamed into place;
# nothing when it cannot be written). On Python 2.7 and 3.
freeze_loader='import marshal, os, sys, zlib
text = os.environ["VD_FREEZE_PY"]
path = sys.argv.pop(1)
tag = getattr(getattr(sys, "implementation", None), "cache_tag", None) or sys.version
tag = ("vd-freeze %d %d %s\n" % (len(text), zlib.crc32(text.encode("utf-8")) & 0xFFFFFFFF, tag)).encode("utf-8")
code = None
try:
    with open(path, "rb") as f:
        if f.readline() == tag:
            code = marshal.loads(f.read())
except Exception:
    pass
if code is None:
    code = compile(text, "freeze.py", "exec")
    try:
        temp = "%s.%d" % (path, os.getpid())
        with open(temp, "wb") as f:
            f.write(tag + marshal.dumps(code))
        os.rename(temp, path)
    except Exception:
        pass
exec(code)'

# digest FILE: FILE's sha256 in hex, by whichever tool the host has.
digest() {
    if command -v sha256sum >/dev/null 2>&1; then
        set -- "$(sha256sum <"$1")"
    elif command -v shasum >/dev/null 2>&1; then
        set -- "$(shasum -a 256 <"$1")"
    else
        set -- "$(openssl dgst -sha256 -r <"$1")"
    fi
    # The first word, without a `cut` process: this runs once per wheel of
    # every push.
    printf '%s\n' "${1%% *}"
}

# cached_wheels FILE...: fail unless every wheel of the cache (each at
# CACHE/SHA256/NAME) can be read by this user and still has the sha256 its
# folder is named by. A copy changed on the host since it was uploaded is
# deleted (the next push sends it again) and never reaches pip.
cached_wheels() {
    for file; do
        [ -r "$file" ] || fail "$file cannot be read by $(id -un): every directory of the" \
            "cache must be searchable, and its files readable, by the venv's user (set the" \
            "target's cache to such a directory)"
        want=${file%/*}
        want=${want##*/}
        got=$(digest "$file")
        if [ "$got" != "$want" ]; then
            rm -f "$file"
            fail "$file has sha256 ${got:-(unreadable)}, not $want: it changed in the cache" \
                "after it was uploaded, so it was deleted and nothing was installed (push again" \
                "to send it anew)"
        fi
    done
}
