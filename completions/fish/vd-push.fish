complete -c vd-push -l repo -d 'The repository: a directory of wheels with its `release_log`' -r -F
complete -c vd-push -l installer -d 'What installs and removes packages, for every target, over each target\'s own `installer`: auto (uv where it can run, else pip), uv (a target where uv cannot run is an error naming why), or pip' -r -f -a "auto\t''
uv\t''
pip\t''"
complete -c vd-push -s j -l jobs -d 'Work on up to N hosts at once. The targets of one host share one SSH session and run one after another' -r
complete -c vd-push -l timeout -d 'Give up on a host whose name does not resolve, or that does not connect, greet or log in, within SECS seconds; also the keepalive interval while a command runs: a host that sends nothing, not even a reply to a keepalive, for three intervals is given up (a command that runs long on a host that answers is not)' -r
complete -c vd-push -l known-hosts -d 'Check host keys against FILE only, and record new ones there, instead of ~/.ssh/known_hosts (and /etc/ssh/ssh_known_hosts)' -r -F
complete -c vd-push -l confirm -d 'For each target with something to do, show its plan and ask on the terminal (/dev/tty; stdin is the pipeline): yes, no, all (this and the rest without asking) or quit (neither this nor the rest). A declined target passes through with `changed: false` and `skipped: true`. Questions come one at a time, in input order; targets already confirmed are pushed meanwhile. Without a terminal, an error before anything is done. Without --confirm, vd-push pushes (for cron)'
complete -c vd-push -l dry-run -d 'Change nothing on any host, not even the cache: list each host\'s cache and add to `pushed` what a push would do: the wheels it would upload (`uploaded`, `uploaded_bytes`), install and remove, `dry_run: true`, and `commands`, the pip commands it would run'
complete -c vd-push -l create -d 'Make the venv of a target with `venv_exists: false` first, with `python -m venv` using the target\'s `python` (default python3), as `venv_user`; a Python 2.7 has no venv module and uses `python -m virtualenv` (virtualenv<21), which must be installed for it. Without --create such a target is an error'
complete -c vd-push -l adopt -d 'For a target with `generations` whose venv is still a plain virtualenv: move it to VENV.generations/1 and put a symlink in its place (two renames; the path is absent only between them), then push as usual. Without --adopt such a target is an error, and its venv is left alone'
complete -c vd-push -l accept-new -d 'Connect to hosts whose key is not yet known, and record their key. A key that differs from the one on file is refused all the same'
complete -c vd-push -l json -d 'Write JSON lines even when stdout is a terminal (piped output always is)'
complete -c vd-push -s q -l quiet -d 'Write nothing on stderr but errors: no progress bar, no summary line, no warnings. Without it, at a terminal, the last tool of a pipeline shows a progress bar on stderr and ends with a summary line'
complete -c vd-push -s h -l help -d 'Print help (see more with \'--help\')'
complete -c vd-push -s V -l version -d 'Print version'
