# vd-push's installer in the wheel cache, on the host: uv's binary taken
# out of its wheel, with this interpreter's zipfile module (no unzip on the
# host needed), and checked against the sha256 the wheel's RECORD gives it.
# Run as the freeze is (`-E -s` from `/`), by a CPython 3.8 or newer (the
# interpreters uv installs into).
#
# usage: python -E -s -c "$(cat unpack_uv.py)" WHEEL DEST
#   WHEEL  CACHE/SHA256/uv-*.whl, already checked against its sha256
#   DEST   where the binary goes (beside the wheel)
#
# A DEST already there with the right hash is kept; any other is replaced.
# The binary is written to a temporary name and renamed into place, so a
# run cut off leaves no half binary at DEST. Exit 0, or 1 with a message on
# stderr.
import base64
import hashlib
import os
import sys
import zipfile


def fail(message):
    sys.stderr.write(message + "\n")
    sys.exit(1)


def record_hash(archive, member):
    records = [n for n in archive.namelist() if n.endswith(".dist-info/RECORD")]
    if len(records) != 1:
        fail("the wheel has no one RECORD")
    for line in archive.read(records[0]).decode("utf-8").splitlines():
        path, _, rest = line.partition(",")
        if path == member and rest.startswith("sha256="):
            return rest.split(",")[0][len("sha256="):]
    fail("the wheel's RECORD gives %s no sha256" % member)


def digest(stream, out=None):
    hashed = hashlib.sha256()
    for chunk in iter(lambda: stream.read(1 << 20), b""):
        hashed.update(chunk)
        if out is not None:
            out.write(chunk)
    return base64.urlsafe_b64encode(hashed.digest()).decode("ascii").rstrip("=")


def main(wheel, dest):
    with zipfile.ZipFile(wheel) as archive:
        members = [n for n in archive.namelist() if n.endswith(".data/scripts/uv")]
        if len(members) != 1:
            fail("%s holds no .data/scripts/uv" % wheel)
        want = record_hash(archive, members[0])
        if os.path.isfile(dest):
            with open(dest, "rb") as held:
                if digest(held) == want:
                    return
        temp = "%s.%d.part" % (dest, os.getpid())
        try:
            with archive.open(members[0]) as source, open(temp, "wb") as out:
                got = digest(source, out)
            if got != want:
                fail("%s in %s has sha256 %s, not %s as its RECORD says" % (members[0], wheel, got, want))
            os.chmod(temp, 0o755)
            os.rename(temp, dest)
        finally:
            if os.path.exists(temp):
                os.remove(temp)


main(sys.argv[1], sys.argv[2])
