# vd-push's check of a saved plan, on the host, under the venv's lock: does
# the freeze just taken (JSON on stdin, as freeze.py prints it) have one of
# the fingerprints in argv[1] (space-separated: the state the plan was made
# from, and the state it makes)? The same text and hash as fingerprint.rs's
# of_state; runs on Python 2.7 and 3.
#
# Exit 0: one of those states; 3: the venv drifted since the plan was made.
import hashlib
import json
import sys

facts = json.load(sys.stdin)
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
sys.exit(0 if found in sys.argv[1].split() else 3)
