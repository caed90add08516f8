# shellcheck shell=sh
# vd-push's wheel cache, on the host: move uploaded wheels into place once
# their sha256 is right. A wheel is uploaded to a hidden temporary name in the
# cache directory; only here, after its hash matches, is it renamed to
# SHA256/FILE, the only names a listing reports, and printed on stdout. A
# wrong or cut-off upload is deleted and reported on stderr.
#
# usage: sh -s -- DIR SHA256 FILE TEMP [SHA256 FILE TEMP ...]
cd "$1" || exit 1
shift
umask 022
digest() {
    if command -v sha256sum >/dev/null 2>&1; then
        sha256sum <"$1"
    elif command -v shasum >/dev/null 2>&1; then
        shasum -a 256 <"$1"
    else
        openssl dgst -sha256 -r <"$1"
    fi | cut -d' ' -f1
}
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
