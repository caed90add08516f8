# shellcheck shell=sh
# What a target with generations is on its host, for generation.sh,
# switch.sh and journal.sh (vd puts it after the prelude, before them).
#
# VENV is a symlink to BASE.generations/N (BASE: VENV's last component),
# the active generation N; the generations are the folders of
# VENV.generations named by a number, and VENV.generations/.vd-lock is the
# lock every change of them takes.
#
# Which generations exist is one rule, `finished`: a generation counts once
# its build finished and its freeze was checked, which vd-push marks by
# writing .vd-finished into it just before it first switches to it. A
# generation without the mark (a build cut off by a killed push) is never
# switched to, and the next push removes it.

# generations_of VENV: the layout's names for VENV.
generations_of() {
    venv=$1
    gens=$1.generations
    base=${1##*/}
}

# finished N: whether generation N's build finished. A generation built
# before vd wrote the mark counts when it holds vd_generation.pth, which
# those builds wrote only after their check (or when it is the active one:
# see `read_active`). Whether its interpreter still runs is another
# question, which the freeze of a switch answers.
finished() {
    [ -e "$gens/$1/.vd-finished" ] && return 0
    for pth in "$gens/$1"/lib/python*/site-packages/vd_generation.pth; do
        [ -e "$pth" ] && return 0
    done
    return 1
}

# mark_finished N: say generation N's build finished.
mark_finished() {
    : >"$gens/$1/.vd-finished"
}

# folders: the numbers of every generation's folder, finished or not,
# lowest first.
folders() {
    for dir in "$gens"/[0-9]*; do
        n=${dir##*/}
        case $n in *[!0-9]*) continue ;; esac
        if [ -d "$dir" ]; then echo "$n"; fi
    done | sort -n
}

# numbers: the finished generations, lowest first: the generations there are.
numbers() {
    folders | while read -r n; do if finished "$n"; then echo "$n"; fi; done
}

# read_active: set `active` to the generation VENV's link names. A link to
# anything but BASE.generations/N (such as BASE.generations/../../x/4) is
# no generation of this venv: refused, naming the link. The active
# generation was switched to, which only a finished build ever is: one
# from before the mark gets it now.
read_active() {
    link=$(readlink "$venv") || fail "cannot read the link $venv"
    active=${link#"$base.generations/"}
    case $active in
    "$link" | "" | *[!0-9]*)
        fail "$venv is a symlink to $link, not to a generation in $base.generations:" \
            "vd does not manage it"
        ;;
    esac
    [ -x "$gens/$active/bin/python" ] ||
        fail "$venv points at generation $active, which has no bin/python"
    finished "$active" || mark_finished "$active" ||
        fail "cannot mark generation $active of $venv as finished"
}

# switch_to N ID: point VENV at generation N with one rename(2) of a new
# link over the old one, so VENV is never absent; then, when ID is not
# empty, note in VENV.generations/.vd-switches that run ID switched from
# the active generation to N, for a later run to read if this one is
# killed before it reports (`journal.sh`).
switch_to() {
    rm -f "$venv.vd-new" &&
        ln -s "$base.generations/$1" "$venv.vd-new" &&
        mv -T "$venv.vd-new" "$venv" || return
    [ -n "$2" ] || return 0
    notes=$gens/.vd-switches
    printf '%s %s %s\n' "$2" "${active:--}" "$1" >>"$notes" || return 0
    # The last hundred switches are kept: a run that did not report is read
    # by the next run to its target, long before a hundred more switches.
    if [ "$(wc -l <"$notes")" -gt 200 ]; then
        tail -n 100 "$notes" >"$notes.new" && mv -f "$notes.new" "$notes"
    fi
    return 0
}
