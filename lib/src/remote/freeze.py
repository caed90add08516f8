# vd-freeze's remote side: the facts of one interpreter, as one JSON object.
#
# Run by the interpreter it describes (VENV/bin/python, or the host's python
# for a venv still to create), with -E -s (Python 2.7 has no -I). The same
# text runs unchanged on CPython 2.7 and 3.6 to 3.13: no f-strings, no
# importlib.metadata (3.8+), no subprocess.run (3.5+). Installed distributions
# are read from the *.dist-info/METADATA and *.egg-info files on sys.path, as
# pip finds them; pip is never imported, so this works in a venv without pip
# and costs one interpreter start.
import sys

# The script comes on stdin, so sys.path[0] is the current directory: leave
# it out, as -I would, so nothing there shadows a module or a distribution.
if sys.path and sys.path[0] == "":
    del sys.path[0]

import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import struct  # noqa: E402
import subprocess  # noqa: E402
import sysconfig  # noqa: E402


def normalize(name):
    return re.sub(r"[-_.]+", "-", name).lower()


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
                    proc = subprocess.Popen(
                        [os.path.join(directory, name)],
                        stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE,
                    )
                    _, stderr = proc.communicate()
                except OSError:
                    continue
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
    return platform.python_implementation().lower()


def markers():
    """The PEP 508 environment, as packaging's default_environment() makes it
    (on Python 2, which has no sys.implementation: "" and "0")."""
    implementation = getattr(sys, "implementation", None)
    return {
        "implementation_name": implementation.name if implementation else "",
        "implementation_version": (
            full_version(implementation.version) if implementation else "0"
        ),
        "os_name": os.name,
        "platform_machine": platform.machine(),
        "platform_python_implementation": platform.python_implementation(),
        "platform_release": platform.release(),
        "platform_system": platform.system(),
        "platform_version": platform.version(),
        "python_full_version": platform.python_version(),
        "python_version": ".".join(platform.python_version_tuple()[:2]),
        "sys_platform": sys.platform,
    }


def mac_version():
    """The macOS release, as packaging's mac_platforms() reads it; "" elsewhere."""
    version = platform.mac_ver()[0]
    if version == "10.16":
        # A Python built against an old SDK is told 10.16 on macOS 11 and
        # later; the real release, with that compatibility shim turned off.
        env = dict(os.environ, SYSTEM_VERSION_COMPAT="0")
        try:
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
        "version": platform.python_version(),
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
        "machine": platform.machine(),
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


def metadata_files(entry):
    """The metadata files of the distributions in one sys.path entry."""
    if entry.endswith(".egg") and os.path.isdir(entry):
        yield os.path.join(entry, "EGG-INFO", "PKG-INFO")
        return
    try:
        names = sorted(os.listdir(entry))
    except OSError:
        return
    for name in names:
        path = os.path.join(entry, name)
        if name.endswith(".dist-info"):
            yield os.path.join(path, "METADATA")
        elif name.endswith(".egg-info"):
            # setuptools writes a directory; distutils a PKG-INFO file.
            yield path if os.path.isfile(path) else os.path.join(path, "PKG-INFO")


def name_and_version(path):
    """Name and Version from a metadata file's headers, or None."""
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8", "replace")
    except (IOError, OSError):
        return None
    found = {}
    for line in text.splitlines():
        if not line.strip():
            break  # the body (a long description) starts here
        key, sep, value = line.partition(":")
        key = key.strip().lower()
        if sep and key in ("name", "version") and key not in found:
            found[key] = value.strip()
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


facts = {"python": interpreter(), "markers": markers()}
if "--no-installed" not in sys.argv:
    facts["installed"] = installed()
json.dump(facts, sys.stdout, sort_keys=True)
sys.stdout.write("\n")
