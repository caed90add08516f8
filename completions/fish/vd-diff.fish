complete -c vd-diff -l repo -d 'The repository: a directory of wheels with its `release_log`' -r -F
complete -c vd-diff -l lock -d 'Plan each target to exactly the packages its own record in FILE had: FILE is saved vd-freeze (or vd-push) output, matched by host, port, user and venv, and applied with --exact. A target missing from FILE, or a saved version the repository does not have, is an error naming it. Takes the place of REQUIREMENTS' -r -F
complete -c vd-diff -l exact -d 'Also remove packages that are installed but outside the resolved closure (pip, setuptools and wheel are kept), so the venv holds the requirements and their dependencies and nothing else. When a kept installed version has no wheel in the repository, its dependencies are unknown, and a plan that would remove anything is an error'
complete -c vd-diff -l upgrade-deps -d 'Choose the highest version for dependencies too. By default a dependency keeps its installed version when that satisfies every requirement on it (pip\'s only-if-needed); projects the requirements name always get the highest version that satisfies'
complete -c vd-diff -l check -d 'Report drift for cron: exit 1 when any target\'s plan is not empty, 0 when every target is in sync, 2 when a target or the run failed'
complete -c vd-diff -l json -d 'Write JSON lines even when stdout is a terminal (piped output always is)'
complete -c vd-diff -s q -l quiet -d 'Write nothing on stderr but errors: no progress bar, no summary line, no warnings. Without it, at a terminal, the last tool of a pipeline shows a progress bar on stderr and ends with a summary line'
complete -c vd-diff -s h -l help -d 'Print help (see more with \'--help\')'
complete -c vd-diff -s V -l version -d 'Print version'
