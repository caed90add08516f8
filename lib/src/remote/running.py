"""What runs from each venv on this host, read from Linux's /proc.

vd runs this with any interpreter the host has (CPython 2.7 or 3.6 and
newer, `-E -s -S`: only the standard library), as the user the target's
other commands run as, so it sees what that user may read and no more.

usage: python -E -s -S - [--busy] VENV...
       python -E -s -S - --mark MARKER

Each VENV is a target's venv path. When VENV is a symlink to
VENV.generations/N it is a target with generations, whose processes carry
a marker: the generation's vd_generation.pth holds a close-on-exec
descriptor open on VENV.generations/N/.vd-running, which /proc/PID/fd names
and forked workers inherit. Any other VENV is changed in place.

A process runs from a venv when one of its descriptors, its executable,
the first word of its command line or a file it maps (a C extension, a
shared library) is inside it. Its generation is the marker's, else the
generation folder one of those paths names, else unknown (null).

Printed: one JSON object, {"venvs": [...], "unseen": {...}}, a member of
"venvs" per VENV in order ({"running": [process...]}); or, where /proc
cannot tell, {"unsupported": "why"}. A process is {pid, generation,
command, started (RFC 3339 UTC), stale (only when true), unreadable (only
when true)}. With --busy (for one VENV with generations): a line
"GENERATION PID" per process whose generation is known.

With --mark: the line of a generation's .pth that marks the processes
started in it with a descriptor on MARKER (its .vd-running). A marker that
cannot be opened is skipped in silence: it never stops an interpreter.
Python 3.4+ opens descriptors close-on-exec anyway (PEP 446); the flag says
so, and a program that execs something else does not carry it.
"""

import os
import sys
import time

MARKER = ".vd-running"


def main(args, dumps=None):
    """Run as a script, or called by freeze.py --venvs with the venvs and
    its own writer of JSON (importing the json module costs as much as the
    scan takes)."""
    if dumps is None:
        import json

        def dumps(value):
            return json.dumps(value, sort_keys=True)

    if args[:1] == ["--mark"]:
        print(mark(args[1]))
        return
    busy = args[:1] == ["--busy"]
    if busy:
        args = args[1:]
    if not os.path.isdir("/proc/self/fd"):
        print(dumps({"unsupported": unsupported()}))
        return
    venvs = [Venv(path) for path in args]
    folders = Folders(venvs)
    clock = Clock()
    seen = Unseen()
    for pid in pids():
        process = Process(pid)
        if not process.command:
            continue  # a kernel thread, or ended
        if process.unreadable:
            seen.count(pid)
        for venv, found in folders.runs_from(process).items():
            venv.running.append(found + (process,))
    if busy:
        for venv in venvs:
            for generation, _, process in venv.running:
                if generation is not None:
                    print("%d %d" % (generation, process.pid))
        return
    out = {
        "venvs": [{"running": venv.report(clock)} for venv in venvs],
        "unseen": seen.report(),
    }
    print(dumps(out))


def mark(marker):
    opening = "try: os.open(%r, os.O_RDONLY | getattr(os, 'O_CLOEXEC', 0))\nexcept Exception: pass"
    return "import os; exec(%r)" % (opening % marker)


def unsupported():
    system = os.uname()[0]
    return (
        "vd reads which processes run from a venv in Linux's /proc/PID/fd, "
        "which this host (%s) does not have" % system
    )


def pids():
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) != os.getpid():
            yield int(name)


def text(raw):
    """A file's bytes as text, whatever their encoding."""
    return raw.decode("utf-8", "replace")


class Process(object):
    """One process, as far as this user may read it."""

    def __init__(self, pid):
        self.pid = pid
        self.base = "/proc/%d" % pid
        try:
            with open(self.base + "/cmdline", "rb") as f:
                words = f.read().split(b"\0")
        except (IOError, OSError):
            words = []
        while words and not words[-1]:
            words.pop()
        self.argv0 = text(words[0]) if words else None
        self.command = " ".join(text(w) for w in words)
        self.unreadable = False
        self.fds = []
        try:
            fd_dir = self.base + "/fd"
            for fd in os.listdir(fd_dir):
                try:
                    self.fds.append(os.readlink(fd_dir + "/" + fd))
                except OSError:
                    pass  # closed meanwhile
        except OSError:
            self.unreadable = True
        self.exe = self.link("exe")
        self._maps = None

    def link(self, name):
        try:
            return os.readlink(self.base + "/" + name)
        except OSError:
            return None

    def maps(self):
        """The files the process maps, read once when asked."""
        if self._maps is None:
            self._maps = set()
            try:
                with open(self.base + "/maps", "rb") as f:
                    for line in f:
                        parts = line.split(None, 5)
                        if len(parts) == 6 and parts[5].startswith(b"/"):
                            self._maps.add(text(parts[5].rstrip(b"\n")))
            except (IOError, OSError):
                pass
        return self._maps

    def started(self, clock):
        """Seconds since the epoch when the process started."""
        try:
            with open(self.base + "/stat", "rb") as f:
                stat = f.read()
        except (IOError, OSError):
            return None
        # The command's name, in parentheses, may hold spaces: fields after
        # the last ")" are plain; starttime is the 22nd field of the line.
        fields = stat[stat.rfind(b")") + 2 :].split()
        return clock.boot + int(fields[19]) / float(clock.hz)


class Venv(object):
    """One VENV of the arguments: its layout, and what runs from it."""

    def __init__(self, path):
        while path.endswith("/") and len(path) > 1:
            path = path[:-1]
        self.path = path
        self.running = []
        gens = path + ".generations"
        self.active = None
        link = None
        if os.path.islink(path) and os.path.isdir(gens):
            link = os.readlink(path)
            number = link.rsplit("/", 1)[-1]
            if link.startswith(os.path.basename(path) + ".generations/") and number.isdigit():
                self.active = int(number)
        if self.active is not None:
            self.gens = [gens, os.path.realpath(gens)]
            self.folders = []
            try:
                self.switched = os.lstat(path).st_mtime
            except OSError:
                self.switched = None
        else:
            self.gens = []
            self.folders = [path, os.path.realpath(path)]
            self.changed = last_change(self.folders[1])

    def report(self, clock):
        out = []
        for generation, how, process in sorted(self.running, key=lambda r: r[2].pid):
            started = process.started(clock)
            if started is None:
                continue  # ended while it was read
            entry = {
                "pid": process.pid,
                "generation": generation,
                "command": process.command,
                "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
            }
            if self.stale(generation, started):
                entry["stale"] = True
            if process.unreadable:
                entry["unreadable"] = True
            out.append(entry)
        return out

    def stale(self, generation, started):
        """Whether the process runs other code than the venv now holds."""
        if self.gens:
            if generation is not None:
                return generation != self.active
            # Unmarked: it started before the link was last switched.
            return self.switched is not None and started < self.switched
        return self.changed is not None and started < self.changed


class Folders(object):
    """The folders the venvs' processes show in /proc, to find a process's
    venvs by looking its paths' parent folders up, once for all the venvs,
    rather than comparing every path with every venv."""

    def __init__(self, venvs):
        self.owners = {}
        for venv in venvs:
            for folder in venv.gens:
                self.owners.setdefault(folder, []).append((venv, "gens"))
            for folder in venv.folders:
                self.owners.setdefault(folder, []).append((venv, "venv"))
            if venv.gens:
                self.owners.setdefault(venv.path, []).append((venv, "link"))

    def runs_from(self, process):
        """{venv: (generation, how)} for each venv the process runs from: by
        the marker it holds open, else a path into a generation's folder or
        into an in-place venv, else (generation unknown) a command line that
        names the venv's link. Its mapped files are read only when nothing
        else told."""
        found = {}
        for path in process.fds:
            self.note(found, path, True)
        for path in (process.exe, process.argv0):
            if path:
                self.note(found, path, False)
        if not found:
            for path in process.maps():
                self.note(found, path, False)
        return found

    def note(self, found, path, open_file):
        for venv, role, rest in self.holders(path):
            if role == "venv":
                found.setdefault(venv, (None, "path"))
            elif role == "link":
                found.setdefault(venv, (None, "command"))
            else:
                number = rest.split("/", 1)[0]
                if not number.isdigit():
                    continue
                if open_file and rest == number + "/" + MARKER:
                    found[venv] = (int(number), "marker")
                elif found.get(venv, (None,))[0] is None:
                    found[venv] = (int(number), "path")

    def holders(self, path):
        """(venv, role, the rest of path) for each folder path lies in."""
        folder = path
        while True:
            cut = folder.rfind("/")
            if cut <= 0:
                return
            folder = folder[:cut]
            for venv, role in self.owners.get(folder, ()):
                yield venv, role, path[cut + 1 :]


def last_change(venv):
    """The venv's last change: the newest mtime of its site-packages folders.

    Every install, upgrade or removal (pip's, uv's, vd-push's) adds or
    removes a .dist-info folder there, which sets the folder's mtime.
    """
    newest = None
    for lib in ("lib", "lib64"):
        try:
            names = os.listdir(os.path.join(venv, lib))
        except OSError:
            continue
        for name in names:
            site = os.path.join(venv, lib, name, "site-packages")
            try:
                mtime = os.stat(site).st_mtime
            except OSError:
                continue
            if newest is None or mtime > newest:
                newest = mtime
    return newest


class Clock(object):
    """When the host booted, to turn a process's start into a time."""

    def __init__(self):
        self.hz = os.sysconf("SC_CLK_TCK")
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        self.boot = time.time() - uptime


class Unseen(object):
    """The processes this user may not read, by their users."""

    def __init__(self):
        self.processes = 0
        self.uids = set()

    def count(self, pid):
        self.processes += 1
        try:
            self.uids.add(os.stat("/proc/%d" % pid).st_uid)
        except OSError:
            pass

    def users(self):
        names = set()
        for uid in self.uids:
            try:
                import pwd

                names.add(pwd.getpwuid(uid).pw_name)
            except (ImportError, KeyError):
                names.add(str(uid))
        return sorted(names)

    def report(self):
        return {"processes": self.processes, "users": self.users()}


if __name__ == "__main__":
    main(sys.argv[1:])
