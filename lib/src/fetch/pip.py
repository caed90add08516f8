"""pip download for one interpreter of a fleet, run by vd-fetch.

Usage: python - MARKERS_JSON REPORT_PATH PIP_DOWNLOAD_ARGS...

pip takes the target's tags and Requires-Python from its own options
(--python-version, --implementation, --abi, --platform), but evaluates
PEP 508 markers for the interpreter that runs it. This runs pip's own
download with the target's marker environment in place of that one, so a
dependency such as `typing-extensions; python_version < "3.11"` is fetched
exactly for the targets that need it. It also writes to REPORT_PATH every
file the index offered, as JSON lines of {project, file, requires_python},
so that vd-fetch can say which platforms a project has wheels for when none
fits.
"""

import json
import sys


def main():
    environment = json.loads(sys.argv[1])
    report_path = sys.argv[2]
    args = sys.argv[3:]

    from pip._vendor.packaging import markers

    markers.default_environment = lambda: dict(environment)

    report = open(report_path, "w")
    try:
        from pip._internal.index.package_finder import LinkEvaluator

        evaluate = LinkEvaluator.evaluate_link

        def evaluate_and_report(self, link):
            report.write(
                json.dumps(
                    {
                        "project": self.project_name,
                        "file": link.filename,
                        "requires_python": link.requires_python,
                    }
                )
                + "\n"
            )
            return evaluate(self, link)

        LinkEvaluator.evaluate_link = evaluate_and_report
    except (ImportError, AttributeError):
        # An older or newer pip: the download works, only the list of
        # platforms in the messages is missing.
        pass

    from pip._internal.cli.main import main as pip_main

    try:
        status = pip_main(["download"] + args)
    finally:
        report.close()
    sys.exit(status)


main()
