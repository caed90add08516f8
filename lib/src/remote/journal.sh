# shellcheck shell=sh disable=SC2154
# (venv, gens, base and active are set by generations.sh, which vd puts
# before this text.)
# What became of runs that ended without reporting, on the host of a target
# with generations (vd puts generations.sh before it). Under the lock every
# change of the generations takes (so a pip a killed run left going has
# ended), print for each ID the switch it made, if it made one.
#
# usage: sh -c "$(cat journal.sh)" vd-push VENV LOCK_WAIT ID...
#
# stdout: `vd-journal ID FROM TO` for each ID that switched VENV from
# generation FROM to TO. A failure prints a message on stderr and exits
# VD_EXIT_FAILED.

generations_of "$1"
lock_wait=$2
shift 2
[ -d "$gens" ] || exit 0
lock "$gens/.vd-lock" "$lock_wait"
[ -e "$gens/.vd-switches" ] || exit 0
for id; do
    while read -r seen from to; do
        if [ "$seen" = "$id" ]; then echo "vd-journal $id $from $to"; fi
    done <"$gens/.vd-switches"
done
