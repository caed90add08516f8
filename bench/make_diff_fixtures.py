"""Fixtures for bench/diff.sh: a repository's worth of valid wheels, target
records with real interpreter facts, and a requirements file.

Wheels are written directly as zips (METADATA, WHEEL, RECORD with real
hashes) rather than built by pip, so 2,000 of them take a second; vd-add
checks them like any other wheel.
"""
import base64
import hashlib
import json
import os
import random
import subprocess
import sys
import zipfile

out, freeze, n_wheels, n_records, n_requirements = sys.argv[1:6]
n_wheels, n_records, n_requirements = int(n_wheels), int(n_records), int(n_requirements)
VERSIONS = ["1.0", "1.1", "2.0", "2.1rc1"]
n_projects = n_wheels // len(VERSIONS)
rng = random.Random(42)


def name(i):
    return f"bench-pkg{i:04d}"


def record_line(path, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def write_wheel(directory, i, version):
    dist = name(i).replace("-", "_")
    info = f"{dist}-{version}.dist-info"
    requires = []
    if i < n_requirements:
        # Each required project depends on the next one, met by the plan.
        requires.append(f"Requires-Dist: {name((i + 1) % n_requirements)}>=1.0")
        requires.append(f"Requires-Dist: nonesuch ; python_version < \"3\"")
        requires.append(f"Requires-Dist: {name(n_requirements + i)} ; extra == \"more\"")
    files = {
        f"{dist}/__init__.py": f"VERSION = {version!r}\n".encode(),
        f"{info}/METADATA": (
            "Metadata-Version: 2.1\n"
            f"Name: {name(i)}\nVersion: {version}\nRequires-Python: >=3.7\n"
            + "".join(r + "\n" for r in requires)
        ).encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: bench\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(record_line(p, d) + "\n" for p, d in files.items())
    record += f"{info}/RECORD,,\n"
    path = os.path.join(directory, f"{dist}-{version}-py3-none-any.whl")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for p, d in files.items():
            z.writestr(p, d)
        z.writestr(f"{info}/RECORD", record)


dist_dir = os.path.join(out, "dist")
os.makedirs(dist_dir, exist_ok=True)
for i in range(n_projects):
    for version in VERSIONS:
        write_wheel(dist_dir, i, version)

specifiers = ["", ">=1.0", ">=1.0,<3", "~=1.0", "==2.*", "!=1.1", ">1.0,<=2.0"]
with open(os.path.join(out, "requirements.txt"), "w") as f:
    f.write("# bench requirements\n")
    for i in range(n_requirements):
        spec = specifiers[i % len(specifiers)]
        marker = ' ; python_version >= "3"' if i % 10 == 0 else ""
        f.write(f"{name(i)}{spec}{marker}\n")

facts = json.loads(subprocess.check_output([sys.executable, freeze, "--no-installed"]))
with open(os.path.join(out, "records.jsonl"), "w") as f:
    for t in range(n_records):
        installed = {"pip": "24.0", "setuptools": "69.0"}
        for i in range(n_requirements):
            roll = rng.random()
            if roll < 0.25:
                continue  # to install
            installed[name(i)] = rng.choice(["0.9", "1.0", "1.1", "2.0", "3.0"])
        for i in range(n_requirements, n_requirements + 20):
            installed[name(i)] = "1.0"
        record = {"host": f"web{t:04d}", "venv": "/srv/app/venv", **facts}
        record["installed"] = dict(sorted(installed.items()))
        f.write(json.dumps(record) + "\n")
