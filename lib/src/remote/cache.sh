# shellcheck shell=sh
# vd-push's wheel cache on a host, DIR: `CACHE/SHA256/FILE` for each wheel.
# What the cache is for is crate::cache's.
#
# usage: sh -s -- list DIR CREATE
#        sh -s -- check DIR SHA256/FILE...
#        sh -s -- commit DIR SHA256 FILE TEMP [SHA256 FILE TEMP ...]
#        sh -s -- uv DIR SHA256/FILE PYTHON UNPACK
#   DIR  an absolute path, or `~` or `~/...` for the login user's home
#
# list: the directory (absolute) on the first line, then `./SHA256/FILE`
# for each cached wheel. With CREATE 1 the directory is made and uploads
# cut off over an hour ago are deleted; with 0 nothing changes, and a
# missing directory lists as empty.
#
# check: `bad SHA256/FILE` for each named wheel whose bytes no longer hash to
# its folder's name (changed or cut short on the host), which is deleted so
# that it is sent again.
#
# commit: move uploaded wheels into place once their sha256 is right. A
# wheel is uploaded to a hidden temporary name in DIR; only here, after its
# hash matches, is it renamed to SHA256/FILE, the only names a listing
# reports, and printed on stdout. A wrong or cut-off upload is deleted and
# reported on stderr; the exit status is then 1.
#
# uv: make the installer of a cached uv wheel ready, as SHA256/uv beside
# it: unpacked by PYTHON running the program UNPACK (unpack_uv.py), then
# started once (`uv --version`). Prints `vd-uv VERSION...` and the binary's
# path on the next line, or `vd-unusable` and why on the next line (it
# cannot be unpacked, or does not start: a cache on a noexec mount, a glibc
# older than it needs); either way the exit status is 0.

mode=$1 dir=$2
shift 2
case $dir in
\~) dir=$HOME ;;
\~/*) dir=$HOME/${dir#\~/} ;;
esac

list() {
    if [ "$1" = 1 ]; then
        mkdir -p "$dir" && cd "$dir" && pwd || exit 1
        find . -mindepth 1 -maxdepth 1 -type f -name '.*.part' -mmin +60 -exec rm -f {} +
    else
        printf '%s\n' "$dir"
        [ -d "$dir" ] || exit 0
        cd "$dir" || exit 1
    fi
    find . -mindepth 2 -maxdepth 2 -type f -name '*.whl' ! -name '.*' -print
}

check() {
    cd "$dir" || exit 1
    for wheel; do
        [ -e "$wheel" ] || continue
        if [ "$(digest "$wheel")" != "${wheel%%/*}" ]; then
            rm -f "$wheel"
            echo "bad $wheel"
        fi
    done
}

commit() {
    cd "$dir" || exit 1
    status=0
    while [ $# -ge 3 ]; do
        sha=$1 file=$2 temp=$3
        shift 3
        got=$(digest "$temp")
        if [ "$got" = "$sha" ]; then
            if mkdir -p "$sha" && chmod 644 "$temp" && mv -f "$temp" "$sha/$file"; then
                echo "$sha/$file"
                continue
            fi
            echo "$file: cannot move it into the cache" >&2
        else
            echo "$file: the uploaded copy has sha256 ${got:-(unreadable)}, not $sha; it was discarded" >&2
        fi
        rm -f "$temp"
        status=1
    done
    exit $status
}

# unusable WHY...: say uv cannot be used here, on one line, and why.
unusable() {
    echo vd-unusable
    printf '%s\n' "$*" | tr '\n' ' '
    echo
    exit 0
}

uv() {
    wheel=$1 python=$2 unpack=$3
    bin=$dir/${wheel%%/*}/uv
    said=$("$python" -E -s -c "$unpack" "$dir/$wheel" "$bin" 2>&1 </dev/null) ||
        unusable "cannot unpack $wheel with $python: $said"
    status=0
    said=$("$bin" --version 2>&1 </dev/null) || status=$?
    case $status in
    0) ;;
    126) unusable "$bin cannot be run (is $dir on a noexec mount?): $said" ;;
    *) unusable "$bin --version failed (exit status $status): $said" ;;
    esac
    echo "vd-uv $said"
    printf '%s\n' "$bin"
}

case $mode in
list) list "$@" ;;
check) check "$@" ;;
commit) commit "$@" ;;
uv) uv "$@" ;;
*) fail "cache.sh: no mode $mode" ;;
esac
