# The cheap build of a new generation, on the host, for generation.sh: the
# new generation starts as a copy of the active one whose files are hard
# links (or reflinks) to the active one's, so it costs what the plan
# changes, not every wheel again. Runs on Python 3.6 and newer (a target
# with generations has `python -m venv`), as the freeze runs: `-E -s`.
#
# `plan HOLDS FILE...`, with the active generation's freeze (freeze.py's
# JSON) on stdin and HOLDS the new set (`NAME==VERSION ...`, normalized
# names): prints `install FILE` for each wheel the active generation lacks
# at its version and `remove NAME` for each package the new set drops (pip,
# setuptools and wheel stay: a new venv has them too). FILE are the wheels
# vd-push sent, those of the plan's changes. Exit 3 with the reason on
# stdout when a copy is not worth it, or cannot be made from them: the plan
# changes more than COPY_AT_MOST of the packages (a fresh venv then costs
# about the same and carries nothing over), or the active generation lacks
# a package whose wheel was not sent (it is not the state planned from).
#
# `fix OLD NEW FILE...`, run by NEW's python once NEW is the copy of OLD:
# makes right what names OLD's path (pyvenv.cfg, the scripts and activate
# files of bin/, the .pth files and the RECORD files that hold it), and
# gives NEW a private copy of every file the installer may open for
# writing: all of bin/ (console scripts), the top-level .pth files, and
# every path the wheels FILE (the ones to install) write that NEW already
# has. Each is written as a new file and renamed into place, never opened
# for writing where it is, so no byte of OLD changes through a shared inode.
import json
import os
import re
import shutil
import sys
import sysconfig
import zipfile

# The share of the packages a plan may change for the new generation still
# to start as a copy. Not a matter of speed (a copy was faster at every
# share measured, bench/RESULTS.md): past it a fresh venv is built, which
# carries nothing over from the one before.
COPY_AT_MOST = 0.5
KEEP = set(["pip", "setuptools", "wheel"])


def normalize(name):
    """PEP 503: runs of -, _ and . become one -, lower case."""
    return re.sub(r"[-_.]+", "-", name).lower()


def plan(holds, files):
    installed = json.load(sys.stdin).get("installed") or {}
    wanted = dict(item.split("==", 1) for item in holds.split())
    by_name = dict((normalize(os.path.basename(f).split("-")[0]), f) for f in files)
    installs = []
    for name in sorted(wanted):
        if installed.get(name) == wanted[name]:
            continue
        if name not in by_name:
            print("no wheel of %s was sent" % name)
            sys.exit(3)
        installs.append(by_name[name])
    removes = sorted(set(installed) - set(wanted) - KEEP)
    changed = len(installs) + len(removes)
    involved = len(set(wanted) | (set(installed) - KEEP))
    if changed > COPY_AT_MOST * involved:
        print(
            "the plan changes %d of %d packages, more than %d%%"
            % (changed, involved, COPY_AT_MOST * 100)
        )
        sys.exit(3)
    for name in removes:
        print("remove " + name)
    for path in installs:
        print("install " + path)


def renamed_into_place(path, data):
    """Write `data` as a new file beside `path`, with its mode, and rename
    it over `path`: the old inode, which OLD may share, is never written."""
    temporary = path + ".vd-new"
    with open(temporary, "wb") as out:
        out.write(data)
    shutil.copystat(path, temporary)
    os.rename(temporary, path)


def private(path):
    """Give `path` an inode of its own, unless it has one already."""
    if os.path.islink(path) or not os.path.isfile(path) or os.stat(path).st_nlink < 2:
        return
    with open(path, "rb") as shared:
        renamed_into_place(path, shared.read())


def fix(old, new, files):
    # OLD's path, not when it is the start of a longer name (generation 1
    # in generation 10's path).
    pattern = re.compile(re.escape(os.fsencode(old)) + rb"(?![0-9A-Za-z._-])")
    target = os.fsencode(new)
    site = sysconfig.get_paths()["purelib"]
    bin_dir = os.path.join(new, "bin")
    rewrite = [os.path.join(new, "pyvenv.cfg")]
    rewrite += [os.path.join(bin_dir, n) for n in os.listdir(bin_dir)]
    rewrite += [os.path.join(site, n) for n in os.listdir(site) if n.endswith(".pth")]
    records = [os.path.join(site, n, "RECORD") for n in os.listdir(site)]
    rewrite += [path for path in records if os.path.isfile(path)]
    for path in rewrite:
        if os.path.islink(path) or not os.path.isfile(path):
            continue
        with open(path, "rb") as f:
            data = f.read()
        moved = pattern.sub(target, data)
        if moved != data or not path.endswith("RECORD"):
            renamed_into_place(path, moved)
    for path in written_by(files, new, site):
        private(path)


def written_by(files, prefix, site):
    """The paths in the venv at `prefix` the wheels `files` may write: each
    of their files where the installer puts it, and the files of their
    .dist-info folders (the installer adds INSTALLER and RECORD there)."""
    for wheel in files:
        with zipfile.ZipFile(wheel) as archive:
            names = archive.namelist()
        for name in names:
            head, _, rest = name.partition("/")
            if head.endswith(".data"):
                scheme, _, rest = rest.partition("/")
                if scheme == "headers":
                    for path in files_under(os.path.join(prefix, "include")):
                        yield path
                elif scheme != "scripts":  # bin/ is private already
                    base = site if scheme in ("purelib", "platlib") else prefix
                    yield os.path.join(base, rest)
            else:
                yield os.path.join(site, name)
            if head.endswith(".dist-info"):
                folder = os.path.join(site, head)
                if os.path.isdir(folder):
                    for kept in os.listdir(folder):
                        yield os.path.join(folder, kept)


def files_under(folder):
    for top, _, names in os.walk(folder):
        for name in names:
            yield os.path.join(top, name)


if __name__ == "__main__":
    if sys.argv[1] == "plan":
        plan(sys.argv[2], sys.argv[3:])
    else:
        fix(sys.argv[2], sys.argv[3], sys.argv[4:])
