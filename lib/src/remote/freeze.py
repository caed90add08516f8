# vd-freeze's remote side: the facts of one interpreter, as one JSON object.
#
# Run by the interpreter it describes (VENV/bin/python, or the host's python
# for a venv still to create). It reads installed distributions from the
# interpreter's own metadata (importlib.metadata) and never imports pip, so it
# works in a venv without pip and costs one interpreter start.
import json
import os
import platform
import re
import struct
import subprocess
import sys
import sysconfig


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
    # musl has no confstr; its dynamic loader prints its version when run.
    for directory in ("/lib", "/usr/lib"):
        try:
            names = os.listdir(directory)
        except OSError:
            continue
        for name in sorted(names):
            if name.startswith("ld-musl-"):
                try:
                    proc = subprocess.run(
                        [os.path.join(directory, name)],
                        stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE,
                    )
                except OSError:
                    continue
                match = re.search(rb"Version (\d+\.\d+)", proc.stderr)
                if match:
                    return "musl", match.group(1).decode()
    return "", ""


def full_version(info):
    version = "{0.major}.{0.minor}.{0.micro}".format(info)
    if info.releaselevel != "final":
        version += info.releaselevel[0] + str(info.serial)
    return version


def markers():
    """The PEP 508 environment, as packaging's default_environment() makes it."""
    return {
        "implementation_name": sys.implementation.name,
        "implementation_version": full_version(sys.implementation.version),
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
    return {
        "executable": sys.executable,
        "implementation": sys.implementation.name,
        "version": platform.python_version(),
        "soabi": config("SOABI") or "",
        "ext_suffix": config("EXT_SUFFIX") or "",
        "py_debug": bool(config("Py_DEBUG")),
        "gil_disabled": bool(config("Py_GIL_DISABLED")),
        "platform": sysconfig.get_platform(),
        "machine": platform.machine(),
        "pointer_bits": struct.calcsize("P") * 8,
        "libc": libc_name,
        "libc_version": libc_version,
        "mac_version": mac_version(),
        "prefix": sys.prefix,
        "base_prefix": getattr(sys, "base_prefix", sys.prefix),
        "venv": sys.prefix != getattr(sys, "base_prefix", sys.prefix),
    }


def installed():
    """{normalized name: version}; the first on sys.path wins, as for pip."""
    try:
        from importlib import metadata
    except ImportError:  # Python < 3.8
        return None
    found = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if not name:
            continue
        found.setdefault(normalize(name), dist.version)
    return dict(sorted(found.items()))


facts = {"python": interpreter(), "markers": markers()}
if "--no-installed" not in sys.argv:
    facts["installed"] = installed()
json.dump(facts, sys.stdout, sort_keys=True)
sys.stdout.write("\n")
