"""Write N small, valid wheels (METADATA, WHEEL, RECORD with real hashes)
quickly, for benchmarks that need many: pip would take minutes to build them.

usage: make_wheels.py OUT_DIR COUNT [VERSIONS_PER_NAME]
"""
import base64
import hashlib
import os
import sys
import zipfile


def record_hash(data):
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def write_wheel(out, name, version, requires=()):
    dist = name.replace("-", "_")
    info = "%s-%s.dist-info" % (dist, version)
    files = {
        "%s.py" % dist: ("VERSION = %r\n" % version).encode() * 20,
        info + "/METADATA": (
            "Metadata-Version: 2.1\nName: %s\nVersion: %s\n%s\n"
            % (name, version, "".join("Requires-Dist: %s\n" % r for r in requires))
        ).encode(),
        info + "/WHEEL": b"Wheel-Version: 1.0\nGenerator: vd-bench\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(
        "%s,%s,%d\n" % (path, record_hash(data), len(data)) for path, data in files.items()
    )
    record += info + "/RECORD,,\n"
    path = os.path.join(out, "%s-%s-py3-none-any.whl" % (dist, version))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for member, data in files.items():
            z.writestr(member, data)
        z.writestr(info + "/RECORD", record)
    return path


def main():
    out, count = sys.argv[1], int(sys.argv[2])
    per_name = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    os.makedirs(out, exist_ok=True)
    for i in range(count):
        name = "bench-pkg-%04d" % (i // per_name)
        version = "1.%d" % (i % per_name)
        write_wheel(out, name, version)


if __name__ == "__main__":
    main()
