# shellcheck shell=sh disable=SC2154
# (venv, gens, base and active are set by generations.sh, which vd puts
# before this text.)
# vd-rollback's (and vd-reload --revert's) switch of a target with
# generations back to an older generation, on the host, as the venv's user.
# The layout, and which generations count, are generations.sh's.
#
# Under the flock on VENV.generations/.vd-lock that vd-push takes: read the
# active generation from VENV's link, choose the one to switch to (TO, or
# the highest-numbered finished generation below the active one), freeze
# it, and point VENV at it with one rename(2) of a new link over the old
# one. Nothing is removed: the generation left stays, for a later push to
# prune. Only a finished generation is ever switched to.
#
# usage: sh -c "$(cat switch.sh)" vd-rollback VENV LOCK_WAIT FROM TO ID <freeze.py
#   FROM   the generation that must be active (empty: any); another active one
#          is an error, nothing switched (a later push got there first)
#   TO     the generation to switch to (empty: the one before the active)
#   ID     the run's intent, noted with its switch (empty: none)
#
# stdout: `vd-from N`, `vd-to M`, M's freeze, `vd-previous P` (the kept
# generation below M, if any) and `vd-switched M`. A failure prints a
# message on stderr and exits VD_EXIT_FAILED.

generations_of "$1"
lock_wait=$2 from=$3 to=$4 id=$5
shift 5
take_freeze ""

# The highest finished generation below N, if any.
below() {
    numbers | while read -r n; do if [ "$n" -lt "$1" ]; then echo "$n"; fi; done | tail -n 1
}

kept() {
    numbers | tr '\n' ' '
}

[ -L "$venv" ] || fail "$venv is not a symlink to a generation (vd-push makes it one)"
[ -e "$gens/.vd-lock" ] || fail "$gens/.vd-lock is missing: $venv was not made by vd-push"
lock "$gens/.vd-lock" "$lock_wait"

read_active
if [ -n "$from" ] && [ "$from" != "$active" ]; then
    fail "$venv is at generation $active, not $from: it changed since, so it is left there"
fi
if [ -z "$to" ]; then
    to=$(below "$active")
    [ -n "$to" ] || fail "$venv is at generation $active and keeps none before it to go back to" \
        "(kept: $(kept))"
fi
[ "$to" != "$active" ] || fail "$venv is at generation $to already"
[ -d "$gens/$to" ] || fail "$venv has no generation $to to go back to (kept: $(kept))"
finished "$to" ||
    fail "$venv has no finished generation $to: its build was cut off before it was checked," \
        "so it is never switched to (the next push removes it; kept: $(kept))"

echo "vd-from $active"
echo "vd-to $to"
run_freeze "$gens/$to/bin/python" || fail "generation $to could not be frozen"
echo "vd-previous $(below "$to")"
switch_to "$to" "$id" || fail "cannot point $venv at generation $to"
echo "vd-switched $to"
