# vd-push's check of a saved plan, on the host, under the venv's lock: does
# the freeze just taken (JSON on stdin, as freeze.py prints it) have one of
# the fingerprints in argv[1] (space-separated: the state the plan was made
# from, and the state it makes)? The same text and hash as fingerprint.rs's
# of_state; the code runs on Python 2.7 and 3, and is run as the freeze is
# (`-E -s` from `/`: no PYTHON* variables, no user site, no module of the
# login user's current directory).
#
# Exit 0: the state planned from; 4: the state the plan makes; 3: neither,
# the venv drifted since the plan was made.
#
# With `--holds "NAME==VERSION ..."` instead: exit 0 when the freeze holds
# exactly those (pip, setuptools and wheel may be there too, as a new venv
# has them), 3 when it does not.
import hashlib
import json
import sys

facts = json.load(sys.stdin)
if sys.argv[1] == "--holds":
    wanted = dict(item.split("==", 1) for item in sys.argv[2].split())
    installed = facts.get("installed") or {}
    extra = set(installed) - set(wanted) - set(["pip", "setuptools", "wheel"])
    same = all(installed.get(name) == version for name, version in wanted.items())
    sys.exit(0 if same and not extra else 3)
python = facts.get("python") or {}
lines = ["vd-state 1"]
installed = facts.get("installed")
if installed is None:
    lines.append("absent")
else:
    lines.append("python %s %s" % (python.get("implementation") or "", python.get("version") or ""))
    for name in sorted(installed):
        lines.append("%s==%s" % (name, installed[name]))
text = "".join(line + "\n" for line in lines)
found = "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()
accepted = sys.argv[1].split()
if found not in accepted:
    sys.exit(3)
sys.exit(0 if found == accepted[0] else 4)
