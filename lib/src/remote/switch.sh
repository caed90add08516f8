# shellcheck shell=sh
# vd-rollback's (and vd-reload --revert's) switch of a target with
# generations back to an older generation, on the host, as the venv's user.
#
# Under the flock on VENV.generations/.vd-lock that vd-push takes: read the
# active generation from VENV's link, choose the one to switch to (TO, or
# the highest-numbered kept generation below the active one), freeze it, and
# point VENV at it with one rename(2) of a new link over the old one. Nothing
# is removed: the generation left stays, for a later push to prune.
#
# usage: sh -c "$(cat switch.sh)" vd-rollback VENV LOCK_WAIT FROM TO <freeze.py
#   FROM   the generation that must be active (empty: any); another active one
#          is an error, nothing switched (a later push got there first)
#   TO     the generation to switch to (empty: the one before the active)
#
# stdout: `vd-from N`, `vd-to M`, M's freeze, `vd-previous P` (the kept
# generation below M, if any) and `vd-switched M`. A failure prints a
# message on stderr and exits 5.

set -u
venv=$1 lock_wait=$2 from=$3 to=$4
shift 4
cd / && umask 022 && freeze=$(cat) || exit 5
gens=$venv.generations
base=${venv##*/}
lock=$gens/.vd-lock

fail() {
    echo "$*" >&2
    exit 5
}

# The numbers of the generations there are, lowest first.
numbers() {
    for dir in "$gens"/[0-9]*; do
        case ${dir##*/} in *[!0-9]*) continue ;; esac
        if [ -x "$dir/bin/python" ]; then echo "${dir##*/}"; fi
    done | sort -n
}

# The highest kept generation below N, if any.
below() {
    numbers | while read -r n; do if [ "$n" -lt "$1" ]; then echo "$n"; fi; done | tail -n 1
}

[ -L "$venv" ] || fail "$venv is not a symlink to a generation (vd-push makes it one)"
[ -e "$lock" ] || fail "$gens/.vd-lock is missing: $venv was not made by vd-push"
command -v flock >/dev/null 2>&1 ||
    fail "flock is not installed on this host (util-linux): vd locks the venv with it"
exec 9<"$lock" || exit 5
flock -w "$lock_wait" 9 || fail "another push has held the lock $lock for ${lock_wait}s; gave up"

link=$(readlink "$venv") || exit 5
case $link in
"$base.generations/"*) active=${link##*/} ;;
*) fail "$venv is a symlink to $link, not into $base.generations: vd does not manage it" ;;
esac
if [ -n "$from" ] && [ "$from" != "$active" ]; then
    fail "$venv is at generation $active, not $from: it changed since, so it is left there"
fi
if [ -z "$to" ]; then
    to=$(below "$active")
    [ -n "$to" ] || fail "$venv is at generation $active and keeps none before it to go back to" \
        "(kept: $(numbers | tr '\n' ' '))"
fi
[ "$to" != "$active" ] || fail "$venv is at generation $to already"
[ -x "$gens/$to/bin/python" ] ||
    fail "$venv has no generation $to to go back to (kept: $(numbers | tr '\n' ' '))"

echo "vd-from $active"
echo "vd-to $to"
printf '%s\n' "$freeze" | "$gens/$to/bin/python" -E -s - || fail "generation $to could not be frozen"
echo "vd-previous $(below "$to")"
if ! { rm -f "$venv.vd-new" &&
    ln -s "$base.generations/$to" "$venv.vd-new" &&
    mv -T "$venv.vd-new" "$venv"; }; then
    fail "cannot point $venv at generation $to"
fi
echo "vd-switched $to"
