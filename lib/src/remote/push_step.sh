# shellcheck shell=sh
# vd-push's installer step of a push in place: what push.sh has
# freeze.py --around run between the two freezes, under the venv's lock.
#
# usage: sh -c "$(cat push_step.sh)" vd-push INSTALLER PYTHON NREMOVE \
#            [NAME ...] [FILE ...]
#   INSTALLER  the uv binary that installs and uninstalls; empty: pip
#   PYTHON     the venv's python
#   NREMOVE    how many NAMEs follow: the packages to uninstall
#   FILE       the wheel files to install, with one installer call
#
# stdout: `vd-pip UNINSTALL INSTALL`, the installer's exit statuses (0 for a
# step not run; no install after a failed uninstall). The installer's
# output goes to stderr.

installer=$1 python=$2 nremove=$3
shift 3

# uninstall N ARGS...: uninstall the first N of ARGS (the package names).
uninstall() {
    n=$1 i=0
    shift
    for arg; do
        shift
        if [ "$i" -lt "$n" ]; then set -- "$@" "$arg"; fi
        i=$((i + 1))
    done
    if [ $# -gt 0 ]; then uninstall_packages "$installer" "$python" "$@"; fi
}

# install N ARGS...: install what follows the first N of ARGS (the files).
install() {
    shift $(($1 + 1))
    if [ $# -gt 0 ]; then install_wheels "$installer" "$python" "$@"; fi
}

uninstall_status=0 install_status=0
uninstall "$nremove" "$@" || uninstall_status=$?
if [ "$uninstall_status" = 0 ]; then
    install "$nremove" "$@" || install_status=$?
fi
echo "vd-pip $uninstall_status $install_status"
