# vd-freeze's remote side: the facts of one interpreter, as one JSON object.
#
# Run by the interpreter it describes (VENV/bin/python, or the host's python
# for a venv still to create), with -E -s (Python 2.7 has no -I). The same
# text runs unchanged on CPython 2.7 and 3.6 to 3.13: no f-strings, no
# importlib.metadata (3.8+), no subprocess.run (3.5+). Installed distributions
# are read from the *.dist-info/METADATA and *.egg-info files on sys.path, as
# pip finds them; pip is never imported, so this works in a venv without pip
# and costs one interpreter start.
#
# With --venvs (see freeze_venvs below) it prints that same object for many
# venvs at once, each read from the venv's files by one interpreter process
# per real interpreter behind their bin/python, not one process per venv.
import sys

# The script comes on stdin, so sys.path[0] is the current directory: leave
# it out, as -I would, so nothing there shadows a module or a distribution.
if sys.path and sys.path[0] == "":
    del sys.path[0]

# json, platform and re are imported only where needed: re alone (which the
# other two import) is a third of this script's start-up, paid once per host
# on every run of vd-freeze.
import os  # noqa: E402
import struct  # noqa: E402
import sysconfig  # noqa: E402
import time  # noqa: E402


def normalize(name):
    """PEP 503: runs of -, _ and . become one -, lower case."""
    name = name.lower()
    for separator in "_.":
        name = name.replace(separator, "-")
    while "--" in name:
        name = name.replace("--", "-")
    return name


def dumps(value):
    """json.dumps(value, sort_keys=True) for what the facts and the scan of
    running processes hold: dicts, lists, strings, integers, booleans and
    None."""
    if sys.version_info[0] < 3:
        import json

        return json.dumps(value, sort_keys=True)
    if isinstance(value, dict):
        items = sorted(value.items())
        return "{" + ", ".join(quote(k) + ": " + dumps(v) for k, v in items) + "}"
    if value is None:
        return "null"
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return quote(value)
    if isinstance(value, list):
        return "[" + ", ".join(dumps(v) for v in value) + "]"
    import json

    return json.dumps(value, sort_keys=True)


PLAIN = hasattr(str, "isascii")

# JSON's escapes for the characters of U+0000 to U+007F that need one.
ESCAPES = dict((i, "\\u%04x" % i) for i in range(32))
ESCAPES.update({8: "\\b", 9: "\\t", 10: "\\n", 12: "\\f", 13: "\\r", 127: "\\u007f"})
ESCAPES.update({ord("\\"): "\\\\", ord('"'): '\\"'})


def quote(text):
    """A JSON string, ASCII only (as json.dumps writes it)."""
    # Most strings (names, versions, paths) need no escape: say so at once
    # where str.isascii exists (3.7+).
    if PLAIN and text.isascii() and text.isprintable():
        if '"' not in text and "\\" not in text:
            return '"' + text + '"'
    text = text.translate(ESCAPES)
    try:
        text.encode("ascii")
    except UnicodeEncodeError:
        text = "".join(c if ord(c) < 128 else escape_wide(ord(c)) for c in text)
    return '"' + text + '"'


def escape_wide(code):
    """\\uXXXX, or a surrogate pair beyond the Basic Multilingual Plane."""
    if code < 0x10000:
        return "\\u%04x" % code
    code -= 0x10000
    return "\\u%04x\\u%04x" % (0xD800 + (code >> 10), 0xDC00 + (code & 0x3FF))


def libc():
    """("glibc" | "musl" | "", version): what manylinux/musllinux tags need."""
    try:
        name, version = os.confstr("CS_GNU_LIBC_VERSION").split()
        if name == "glibc":
            return "glibc", version
    except (AttributeError, OSError, ValueError):
        pass
    # Some builds (Python 2.7's among them) do not know that confstr name:
    # ask glibc itself, as packaging does.
    try:
        import ctypes

        get_version = ctypes.CDLL(None).gnu_get_libc_version
        get_version.restype = ctypes.c_char_p
        version = get_version()
        if not isinstance(version, str):
            version = version.decode("ascii")
        return "glibc", version
    except (ImportError, OSError, AttributeError, TypeError, ValueError):
        pass
    # musl has no confstr; its dynamic loader prints its version when run.
    for directory in ("/lib", "/usr/lib"):
        try:
            names = os.listdir(directory)
        except OSError:
            continue
        for name in sorted(names):
            if name.startswith("ld-musl-"):
                try:
                    import subprocess  # here only: costly to import

                    proc = subprocess.Popen(
                        [os.path.join(directory, name)],
                        stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE,
                    )
                    _, stderr = proc.communicate()
                except OSError:
                    continue
                import re

                match = re.search(br"Version (\d+\.\d+)", stderr)
                if match:
                    return "musl", match.group(1).decode("ascii")
    return "", ""


def full_version(info):
    version = "{0}.{1}.{2}".format(info[0], info[1], info[2])
    if info[3] != "final":
        version += info[3][0] + str(info[4])
    return version


def implementation_name():
    """sys.implementation.name; Python 2 has only platform's name."""
    implementation = getattr(sys, "implementation", None)
    if implementation is not None:
        return implementation.name
    return platform_facts()["python_implementation"].lower()


PLATFORM = []


def platform_facts():
    """What the facts take from the platform module. CPython on Linux gets
    them as platform computes them there (os.uname(), the version at the
    start of sys.version with its patch level added) without importing it;
    everything else asks platform itself."""
    if not PLATFORM:
        implementation = getattr(sys, "implementation", None)
        if implementation is not None and implementation.name == "cpython" and sys.platform == "linux":
            system, _, release, version, machine = os.uname()
            python = ""
            for c in sys.version.split()[0]:
                if not (c.isalnum() or c in "._+"):
                    break
                python += c
            if len(python.split(".")) == 2:
                python += ".0"
            facts = {
                "system": system,
                "release": release,
                "version": version,
                "machine": machine,
                "python_implementation": "CPython",
                "python_version": python,
            }
            # platform.uname() gives "" for what os.uname() says is unknown.
            for key in ("system", "release", "version", "machine"):
                if facts[key] == "unknown":
                    facts[key] = ""
        else:
            import platform

            facts = {
                "system": platform.system(),
                "release": platform.release(),
                "version": platform.version(),
                "machine": platform.machine(),
                "python_implementation": platform.python_implementation(),
                "python_version": platform.python_version(),
            }
        PLATFORM.append(facts)
    return PLATFORM[0]


def markers():
    """The PEP 508 environment, as packaging's default_environment() makes it
    (on Python 2, which has no sys.implementation: "" and "0")."""
    implementation = getattr(sys, "implementation", None)
    facts = platform_facts()
    return {
        "implementation_name": implementation.name if implementation else "",
        "implementation_version": (
            full_version(implementation.version) if implementation else "0"
        ),
        "os_name": os.name,
        "platform_machine": facts["machine"],
        "platform_python_implementation": facts["python_implementation"],
        "platform_release": facts["release"],
        "platform_system": facts["system"],
        "platform_version": facts["version"],
        "python_full_version": facts["python_version"],
        "python_version": ".".join(facts["python_version"].split(".")[:2]),
        "sys_platform": sys.platform,
    }


def mac_version():
    """The macOS release, as packaging's mac_platforms() reads it; "" elsewhere."""
    if sys.platform != "darwin":
        return ""
    import platform

    version = platform.mac_ver()[0]
    if version == "10.16":
        # A Python built against an old SDK is told 10.16 on macOS 11 and
        # later; the real release, with that compatibility shim turned off.
        env = dict(os.environ, SYSTEM_VERSION_COMPAT="0")
        try:
            import subprocess  # here only: costly to import

            proc = subprocess.Popen(
                [sys.executable, "-sS", "-c", "import platform; print(platform.mac_ver()[0])"],
                stdout=subprocess.PIPE,
                env=env,
            )
            out, _ = proc.communicate()
            version = out.decode("ascii").strip() or version
        except OSError:
            pass
    return version


def interpreter():
    libc_name, libc_version = libc()
    config = sysconfig.get_config_var
    pymalloc = config("WITH_PYMALLOC")
    unicode_size = config("Py_UNICODE_SIZE")
    return {
        "executable": sys.executable,
        "implementation": implementation_name(),
        "version": platform_facts()["python_version"],
        "soabi": config("SOABI") or "",
        "ext_suffix": config("EXT_SUFFIX") or "",
        "py_debug": bool(config("Py_DEBUG")),
        "gil_disabled": bool(config("Py_GIL_DISABLED")),
        # The ABI flags of CPython before 3.8 (cp37m, cp27mu): pymalloc, and
        # before 3.3 the width of a unicode character (UCS-4: maxunicode is
        # 0x10FFFF). null where the build does not say.
        "with_pymalloc": None if pymalloc is None else bool(pymalloc),
        "unicode_size": unicode_size,
        "maxunicode": sys.maxunicode,
        "platform": sysconfig.get_platform(),
        "machine": platform_facts()["machine"],
        "pointer_bits": struct.calcsize("P") * 8,
        "libc": libc_name,
        "libc_version": libc_version,
        "mac_version": mac_version(),
        "prefix": sys.prefix,
        "base_prefix": base_prefix(),
        "venv": sys.prefix != base_prefix(),
    }


def base_prefix():
    """The interpreter a venv was made from: base_prefix (venv, virtualenv
    20), real_prefix (virtualenv before 20), else sys.prefix."""
    return getattr(sys, "real_prefix", None) or getattr(sys, "base_prefix", sys.prefix)


def metadata_files(entry, names=None):
    """The metadata files of the distributions in one sys.path entry (whose
    listing is names, when the caller has it already)."""
    if entry.endswith(".egg") and os.path.isdir(entry):
        yield os.path.join(entry, "EGG-INFO", "PKG-INFO")
        return
    if names is None:
        try:
            names = os.listdir(entry)
        except OSError:
            return
    for name in sorted(names):
        if name.endswith(".dist-info"):
            yield os.path.join(entry, name, "METADATA")
        elif name.endswith(".egg-info"):
            # setuptools writes a directory; distutils a PKG-INFO file.
            path = os.path.join(entry, name)
            yield path if os.path.isfile(path) else os.path.join(path, "PKG-INFO")


# Name and Version come first in every metadata file seen: the rest (a
# long description, often most of the file) is read only when they do not,
# and of what is read the first lines are looked at first.
HEAD = 4096
FIRST_LOOK = 512


def name_and_version(path):
    """Name and Version from a metadata file's headers, or None."""
    # os.open rather than open(): a metadata file per distribution per venv
    # is read, and open() adds two system calls and two objects to each.
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        data = read_up_to(fd, HEAD)
        found = None
        if len(data) == HEAD:
            # The last line may be cut short: leave it out of this look.
            found = headers(data[: data.rfind(b"\n") + 1])
            if found is None:
                data += read_up_to(fd, -1)
        if found is None:
            found = headers(data)
    except OSError:
        return None
    finally:
        os.close(fd)
    return found


def read_up_to(fd, size):
    """Up to size bytes from fd (all that is left when size is -1): fewer
    only at the end of the file."""
    chunks, left = [], size
    while left:
        chunk = os.read(fd, left if left > 0 else 65536)
        if not chunk:
            break
        chunks.append(chunk)
        if left > 0:
            left -= len(chunk)
    return b"".join(chunks)


def headers(data):
    """Name and Version from the headers at the start of data, or None."""
    # Most files name both in their first few lines; looking at those alone
    # gives the same answer when it finds both, as the lines are the same.
    cut = data.rfind(b"\n", 0, FIRST_LOOK) + 1
    if 0 < cut < len(data):
        found = header_lines(data[:cut])
        if found is not None:
            return found
    return header_lines(data)


def header_lines(data):
    """headers() over all of data."""
    found = {}
    for line in data.decode("utf-8", "replace").splitlines():
        if not line.strip():
            break  # the body (a long description) starts here
        key, sep, value = line.partition(":")
        key = key.strip().lower()
        if sep and key in ("name", "version") and key not in found:
            found[key] = value.strip()
            if len(found) == 2:
                break
    if found.get("name") and found.get("version"):
        return found["name"], found["version"]
    return None


# What pip list leaves out as part of the standard library: Python 2.7
# carries Python-2.7.egg-info and wsgiref.egg-info in its own lib directory.
STDLIB = ("python", "wsgiref", "argparse")


def installed():
    """{normalized name: version}; the first on sys.path wins, as for pip."""
    found = {}
    for entry in sys.path:
        for path in metadata_files(entry or "."):
            dist = name_and_version(path)
            if dist:
                found.setdefault(normalize(dist[0]), dist[1])
    for name in STDLIB:
        found.pop(name, None)
    return dict(sorted(found.items()))


# -- Many venvs at once ------------------------------------------------------
#
# freeze.py --venvs TOKEN INDEX VENV [INDEX VENV ...], run by the interpreter
# of one of the venvs with -E -s -S -c (the text of this script) and this
# script's text again in the environment variable VD_FREEZE_PY, or on stdin
# (for the processes it starts). For each venv it
# prints, after a line "TOKEN INDEX out" (each such line after a newline),
# exactly what the per-venv freeze would print, then "TOKEN INDEX err" and
# what that freeze said on stderr, then "TOKEN INDEX status N", its exit
# status. A venv whose bin/python is this interpreter is read here, as its
# own interpreter would see it: this interpreter's facts (with the venv's
# executable and prefix), and the distributions on the stdlib's part of
# sys.path (as -S leaves it, the same for every venv of the interpreter, read
# once) followed by the venv's site-packages and the directories their .pth
# files add, as site.py adds them. The venvs of other interpreters go to one
# process of each of those (--venvs-here: no further ones). Whatever this
# cannot reproduce exactly is left to the venv's own python running this
# script as the per-venv freeze does: no pyvenv.cfg, system site-packages,
# Python 2 (virtualenv's own site.py), a bin/python that is not a link to
# this interpreter, a .pth file that runs code, a sitecustomize in the venv,
# Debian's dist-packages in it, or anything that fails on the way.

# .pth files whose import lines are known to leave sys.path as it is:
# setuptools' distutils shim, virtualenv's distutils patch, and setuptools'
# editable finders (which add to sys.meta_path, not sys.path).
QUIET_PTH = ("distutils-precedence.pth", "_virtualenv.pth")


class Fallback(Exception):
    """A venv this process cannot answer for exactly: its own python must."""


def pyvenv_cfg(venv):
    """pyvenv.cfg's keys as site.py reads them (the last of a key wins)."""
    if os.path.exists(os.path.join(venv, "bin", "pyvenv.cfg")):
        raise Fallback("bin/pyvenv.cfg comes first")
    import io

    cfg, homes = {}, 0
    with io.open(os.path.join(venv, "pyvenv.cfg"), encoding="utf-8") as f:
        for line in f:
            key, sep, value = line.partition("=")
            if sep:
                key = key.strip().lower()
                cfg[key] = value.strip()
                homes += key == "home"
    if homes != 1:
        raise Fallback("getpath reads the first home, site.py the last")
    return cfg


class Venvs(object):
    """The venvs of this interpreter, read from their files."""

    def __init__(self):
        if sys.version_info < (3, 3):
            raise Fallback("virtualenv's own site.py")
        self.python = interpreter()
        self.markers = markers()
        self.markers_text = None
        self.real = os.path.realpath(sys.executable)
        self.base_prefix = sys.base_prefix
        self.version = "python%d.%d%s" % (
            sys.version_info[0],
            sys.version_info[1],
            "t" if self.python["gil_disabled"] else "",
        )
        platlibdir = getattr(sys, "platlibdir", "lib")
        self.libdirs = [platlibdir] + (["lib"] if platlibdir != "lib" else [])
        # sys.path as site.py finds it before it adds anything: made
        # absolute, without duplicates.
        self.known, self.path = set(), []
        for entry in sys.path:
            entry = os.path.abspath(entry)
            if entry not in self.known:
                self.known.add(entry)
                self.path.append(entry)
        self.found = {}
        add_installed(self.found, self.path)

    def freeze(self, venv):
        """What the per-venv freeze prints for venv, as text."""
        return self.text(*self.facts(venv))

    def text(self, found, python):
        """dumps of {"installed", "markers", "python"}, keys in that order,
        with the markers (the same for every venv) written once."""
        if self.markers_text is None:
            self.markers_text = dumps(self.markers)
        return '{"installed": %s, "markers": %s, "python": %s}\n' % (
            dumps(found),
            self.markers_text,
            dumps(python),
        )

    def facts(self, venv):
        """venv's installed distributions and its python's facts, as its
        own python would find them."""
        venv = os.path.abspath(venv)
        executable = os.path.join(venv, "bin", "python")
        if not os.path.islink(executable) or os.path.realpath(executable) != self.real:
            raise Fallback("another interpreter")
        cfg = pyvenv_cfg(venv)
        if cfg.get("include-system-site-packages", "true").lower() == "true":
            raise Fallback("system site-packages")
        if os.path.normpath(cfg["home"]) != os.path.dirname(self.real):
            raise Fallback("its base prefix is searched from elsewhere")
        # Debian's site.py adds these in a venv too.
        debian = [os.path.join(venv, "local", "lib", self.version, "dist-packages")]
        debian.append(os.path.join(venv, "lib", "python3", "dist-packages"))
        for libdir in self.libdirs:
            debian.append(os.path.join(venv, libdir, self.version, "dist-packages"))
        if any(os.path.exists(path) for path in debian):
            raise Fallback("dist-packages")
        # Each directory is listed once: {path: its names}.
        known, entries, listings = set(self.known), [], {}
        for libdir in self.libdirs:
            site_dir = os.path.join(venv, libdir, self.version, "site-packages")
            if os.path.isdir(site_dir):
                add_site_dir(site_dir, known, entries, listings)
        for entry in entries:
            if entry not in listings:
                try:
                    listings[entry] = os.listdir(entry)
                except OSError:
                    continue
            names = listings[entry]
            if any(n.startswith(("sitecustomize", "usercustomize")) for n in names):
                raise Fallback("code run at start")
        found = dict(self.found)
        add_installed(found, entries, listings)
        for name in STDLIB:
            found.pop(name, None)
        python = dict(self.python)
        python.update(executable=executable, prefix=venv, base_prefix=self.base_prefix, venv=True)
        return found, python


def add_installed(found, entries, listings=None):
    """Add the distributions in entries to found; the first found wins.
    listings: {entry: its names}, for the entries listed already."""
    for entry in entries:
        for path in metadata_files(entry, (listings or {}).get(entry)):
            dist = name_and_version(path)
            if dist:
                found.setdefault(normalize(dist[0]), dist[1])


def add_site_dir(site_dir, known, entries, listings):
    """site.addsitedir: the directory, then the directories its .pth files
    name. Its listing goes into listings."""
    site_dir = os.path.abspath(site_dir)
    if site_dir not in known:
        known.add(site_dir)
        entries.append(site_dir)
    try:
        names = listings[site_dir] = os.listdir(site_dir)
    except OSError:
        return
    for name in sorted(n for n in names if n.endswith(".pth")):
        if name.startswith("."):
            raise Fallback("3.13 skips hidden .pth files")
        try:
            with open(os.path.join(site_dir, name), "rb") as f:
                # site.py reads the locale's encoding (3.13: UTF-8 first).
                text = f.read().decode("ascii")
        except (IOError, OSError):
            continue
        for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
            if line.startswith("#") or not line.strip():
                continue
            if line.startswith(("import ", "import\t")):
                if name in QUIET_PTH or name.startswith("__editable__."):
                    continue
                raise Fallback("a .pth file runs code")
            entry = os.path.abspath(os.path.join(site_dir, line.rstrip()))
            if entry not in known and os.path.exists(entry):
                known.add(entry)
                entries.append(entry)


def write_section(out, token, index, stdout, stderr, status):
    """One venv's freeze as the per-venv command would have ended."""
    mark = "\n%s %s %%s\n" % (token, index)
    out.write((mark % "out").encode("ascii") + stdout)
    out.write((mark % "err").encode("ascii") + stderr)
    out.write((mark % ("status %d" % status)).encode("ascii"))


def own_freeze(venv, source):
    """The per-venv freeze: the venv's python running this script."""
    python = os.path.join(venv, "bin", "python")
    import subprocess  # here only: costly to import, and rarely needed

    try:
        proc = subprocess.Popen(
            [python, "-E", "-s", "-"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        stdout, stderr = proc.communicate(source)
    except OSError as e:
        return b"", ("%s: %s\n" % (python, e)).encode("utf-8", "replace"), 126
    status = proc.returncode
    return stdout, stderr, status if status >= 0 else 128 - status


def freeze_venvs(token, args, here_only):
    out = getattr(sys.stdout, "buffer", sys.stdout)
    stdin = getattr(sys.stdin, "buffer", sys.stdin)
    source = []

    def script():
        """This script's text, as bytes: freeze_batch.sh passes it in
        VD_FREEZE_PY (a pipe to stdin would cost the shell two forks)."""
        if not source:
            environ = getattr(os, "environb", os.environ)
            source.append(environ.get(b"VD_FREEZE_PY") or stdin.read())
        return source[0]

    me = os.path.realpath(sys.executable)
    mine, others = [], {}
    for index, venv in zip(args[0::2], args[1::2]):
        python = os.path.join(venv, "bin", "python")
        real = os.path.realpath(python) if os.path.islink(python) else me
        if real == me or here_only:
            mine.append((index, venv))
        else:
            others.setdefault(real, []).append((index, venv))
    venvs = None
    for index, venv in mine:
        try:
            if venvs is None:
                venvs = Venvs()
            text = venvs.freeze(venv).encode("ascii")
            write_section(out, token, index, text, b"", 0)
        except Exception:
            write_section(out, token, index, *own_freeze(venv, script()))
        out.flush()
    if others:
        import subprocess  # here only: costly to import, and rarely needed
    for real in sorted(others):
        text = script()
        if not isinstance(text, str):
            text = text.decode("utf-8")
        command = [real, "-E", "-s", "-S", "-c", text, "--venvs-here", token]
        for index, venv in others[real]:
            command += [index, venv]
        try:
            subprocess.Popen(command, stdin=subprocess.PIPE).communicate(script())
        except OSError:
            pass  # vd freezes those venvs one by one


def scan_running(token):
    """With VD_RUNNING_PY (running.py's text) and VD_RUNNING_VENVS (the
    batch's venvs, a line each), what runs from them, marked as
    freeze_batch.sh marks it: the scan in this process costs no interpreter
    start of its own."""
    code = os.environ.get("VD_RUNNING_PY")
    if not code:
        return
    venvs = [v for v in os.environ.get("VD_RUNNING_VENVS", "").split("\n") if v]
    sys.stdout.write("\n%s running\n" % token)
    sys.stdout.flush()
    try:
        scope = {"__name__": "vd_running"}
        exec(compile(code, "running.py", "exec"), scope)
        scope["main"](venvs, dumps)
        sys.stdout.write("\n%s running-status 0\n" % token)
    except Exception as e:
        sys.stdout.write("\n%s running-status 1\n%s" % (token, e))
    sys.stdout.flush()


# -- One venv, checked: a push's freeze ---------------------------------------
#
# freeze.py --venv VENV ACCEPT [HOLDS], run by VENV's python with -E -s -S -c
# (the text of this script, which VD_FREEZE_PY carries too). It prints what
# the per-venv freeze would print: read here as --venvs reads a venv, or, for
# a venv this cannot answer for exactly (see above), by VENV's python
# running this script again without -S (--venv-own, the same arguments).
# A push freezes before and after its installer under the venv's lock, and
# checks the first freeze: each interpreter start it spares (and each
# compile of this script) is a few milliseconds per venv of a release.
#
# The check says which state the venv is in, by its exit status: 0 the
# state the plan was made from, whose fingerprint (crate::fingerprint's
# of_state) is ACCEPT's first word; 4 the state the plan makes, ACCEPT's
# second word, or (HOLDS, space-separated NAME==VERSION) exactly those
# distributions, pip, setuptools and wheel aside, as a new venv brings its
# own; 3 neither. ACCEPT may be empty and HOLDS left out: with neither, 0.
#
# freeze.py --around VENV ACCEPT COMPILE COMMAND...: a push's freezes
# around its installer, from this one process: "vd-before" and VENV's
# freeze; then, when the check of ACCEPT says the venv drifted, "vd-drifted"
# and nothing more; else COMMAND runs (its stdout is this one's), with
# COMPILE (not empty) the bytecode of the distributions it installed is
# compiled (see compile_installed), and VENV's freeze after it follows. The
# exit status is 0 once the first freeze is printed. A venv
# this cannot answer for is frozen by its own python (--around-own; the
# freeze after by a process started after COMMAND, which sees the .pth
# files COMMAND wrote).
#
# freeze.py --check ACCEPT [HOLDS]: the same check of a freeze taken before
# (its JSON on stdin), by any python.


def fingerprint(found, python):
    """crate::fingerprint's of_state: of a venv still to create when found
    is None."""
    import hashlib

    lines = ["vd-state 1"]
    if found is None:
        lines.append("absent")
    else:
        implementation, version = python.get("implementation"), python.get("version")
        lines.append("python %s %s" % (implementation or "", version or ""))
        lines.extend("%s==%s" % (name, found[name]) for name in sorted(found))
    text = "".join(line + "\n" for line in lines)
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def holds(found, wanted):
    """Whether found is exactly wanted (NAME==VERSION ...), pip, setuptools
    and wheel aside."""
    wanted = dict(item.split("==", 1) for item in wanted.split())
    found = found or {}
    extra = set(found) - set(wanted) - set(["pip", "setuptools", "wheel"])
    return not extra and all(found.get(name) == version for name, version in wanted.items())


def state(found, python, accept, wanted):
    """The exit status of the check (see above); wanted is None when HOLDS
    was not given (an empty HOLDS asks for a venv that holds nothing but
    pip, setuptools and wheel)."""
    accept = accept.split()
    if accept or wanted is not None:
        found_print = fingerprint(found, python) if accept else None
        if accept and found_print == accept[0]:
            return 0
        if found_print in accept[1:] or (wanted is not None and holds(found, wanted)):
            return 4
        return 3
    return 0


def own_python(venv, mode, args):
    """Run this script again as VENV's python with site.py, in mode (this
    process is replaced)."""
    python = os.path.join(venv, "bin", "python")
    script = os.environ["VD_FREEZE_PY"]
    sys.stdout.flush()
    os.execv(python, [python, "-E", "-s", "-c", script, mode, venv] + list(args))


def read_venv(venv, own, mode, args):
    """(installed, python facts, freeze text) of venv: this process's own
    (own), else read as --venvs reads it, else by own_python(mode)."""
    if own:
        found, python = installed(), interpreter()
        return found, python, dumps({"installed": found, "markers": markers(), "python": python}) + "\n"
    try:
        venvs = these_venvs()
        found, python = venvs.facts(venv)
        return found, python, venvs.text(found, python)
    except Exception:  # as --venvs: the venv's own python answers
        own_python(venv, mode, args)


VENVS = []


def these_venvs():
    """The one Venvs of this process (what it reads of the interpreter is
    read once)."""
    if not VENVS:
        VENVS.append(Venvs())
    return VENVS[0]


def freeze_checked(venv, checks, own):
    """freeze.py --venv (own: --venv-own) with checks, [ACCEPT [HOLDS]];
    returns the exit status."""
    accept = checks[0] if checks else ""
    wanted = checks[1] if len(checks) > 1 else None
    found, python, text = read_venv(venv, own, "--venv-own", checks)
    sys.stdout.write(text)
    sys.stdout.flush()
    return state(found, python, accept, wanted)


def around(venv, accept, compile_them, command, own):
    """freeze.py --around (own: --around-own); returns the exit status."""
    args = [accept, compile_them] + command
    found, python, text = read_venv(venv, own, "--around-own", args)
    sys.stdout.write("vd-before\n" + text)
    if state(found, python, accept, None) == 3:
        sys.stdout.write("vd-drifted\n")
        return 0
    sys.stdout.flush()
    started = time.time()
    pid = os.fork()
    if pid == 0:
        try:
            os.execvp(command[0], command)
        except OSError as e:
            sys.stderr.write("cannot run %s: %s\n" % (command[0], e))
        os._exit(127)
    os.waitpid(pid, 0)
    if compile_them:
        # File times come from a coarser clock than time.time(): a margin,
        # at the cost of compiling again what a push just before installed.
        compile_installed(venv, started - 2)
    if own:
        own_python(venv, "--venv-own", [""])
    try:
        sys.stdout.write(these_venvs().freeze(venv))
    except Exception:
        own_python(venv, "--venv-own", [""])
    return 0


def compile_installed(venv, since):
    """Bytecode for the .py files of the distributions installed in venv's
    site-packages since the time since (their RECORD is newer), compiled as
    pip compiles what it installs (py_compile's steps: a timestamp .pyc in
    __pycache__, written to a temporary file and renamed), with the import
    system's own functions, which the interpreter has loaded already
    (importing py_compile costs more than a small package's compile). A file
    that does not compile is left to the import system, as pip leaves it."""
    external = sys.modules.get("_frozen_importlib_external")
    platlibdir = getattr(sys, "platlibdir", "lib")
    threaded = "t" if sysconfig.get_config_var("Py_GIL_DISABLED") else ""
    version = "python%d.%d%s" % (sys.version_info[0], sys.version_info[1], threaded)
    for libdir in sorted(set([platlibdir, "lib"])):
        site_dir = os.path.join(venv, libdir, version, "site-packages")
        try:
            names = os.listdir(site_dir)
        except OSError:
            continue
        for name in names:
            record = os.path.join(site_dir, name, "RECORD")
            try:
                if not name.endswith(".dist-info") or os.stat(record).st_mtime < since:
                    continue
                with open(record, "rb") as f:
                    lines = f.read().decode("utf-8", "replace").splitlines()
            except (IOError, OSError):
                continue
            for line in lines:
                path = line.rsplit(",", 2)[0]
                if not path.endswith(".py") or path.startswith(("/", "..", '"')):
                    continue
                try:
                    compile_file(external, os.path.join(site_dir, path))
                except Exception:
                    pass


def compile_file(external, path):
    """py_compile.compile(path): its bytecode in __pycache__, as import
    would write it (by py_compile itself where the import system lacks
    those functions)."""
    if not hasattr(external, "_code_to_timestamp_pyc"):
        import py_compile

        py_compile.compile(path, doraise=True)
        return
    with open(path, "rb") as f:
        source = f.read()
    code = compile(source, path, "exec", dont_inherit=True)
    stat = os.stat(path)
    data = external._code_to_timestamp_pyc(code, stat.st_mtime, stat.st_size)
    cached = external.cache_from_source(path)
    try:
        os.mkdir(os.path.dirname(cached))
    except OSError:
        pass  # there already (or not to be made: the write says so)
    external._write_atomic(cached, data, external._calc_mode(path))


def check_given(accept, wanted=None):
    """freeze.py --check; returns the exit status."""
    import json

    facts = json.load(sys.stdin)
    return state(facts.get("installed"), facts.get("python") or {}, accept, wanted)


if sys.argv[1:2] == ["--check"]:
    sys.exit(check_given(*sys.argv[2:4]))
elif sys.argv[1:2] in (["--around"], ["--around-own"]):
    own = sys.argv[1] == "--around-own"
    sys.exit(around(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:], own=own))
elif sys.argv[1:2] in (["--venv"], ["--venv-own"]):
    sys.exit(freeze_checked(sys.argv[2], sys.argv[3:5], own=sys.argv[1] == "--venv-own"))
elif "--venvs" in sys.argv[1:2] or "--venvs-here" in sys.argv[1:2]:
    freeze_venvs(sys.argv[2], sys.argv[3:], sys.argv[1] == "--venvs-here")
    if sys.argv[1] == "--venvs":
        scan_running(sys.argv[2])
else:
    facts = {"python": interpreter(), "markers": markers()}
    if "--no-installed" not in sys.argv:
        facts["installed"] = installed()
    sys.stdout.write(dumps(facts) + "\n")
