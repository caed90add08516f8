# shellcheck shell=bash
# What vd's own scripts need from the machine, said once: sourced by the
# test set-up (scripts/test-setup) and by the demo's and benchmarks' fleet
# (bench/fleet.sh). Bash only.
#
#   require_packages WHO PACKAGE...
#       install the Debian PACKAGEs given (duplicates are fine) and say so
#       on stderr, prefixed with WHO; as a user who is not root, or where
#       there is no apt-get, fail at once naming them and the command that
#       installs them. No package given: nothing to do.

require_packages() {
    local who=$1 pkg
    shift
    local -a need=()
    # One of each, in the order first named.
    for pkg in "$@"; do
        [[ " ${need[*]} " == *" $pkg "* ]] || need+=("$pkg")
    done
    [ ${#need[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
        echo "$who: missing ${need[*]}; install them first (Debian: sudo apt-get install ${need[*]})" >&2
        return 1
    fi
    echo "$who: installing ${need[*]}" >&2
    # apt-get's own errors go to stderr as they are; its progress does not.
    if ! DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null ||
        ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null; then
        echo "$who: could not install ${need[*]}" >&2
        return 1
    fi
}
