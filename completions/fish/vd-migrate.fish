complete -c vd-migrate -l repo -d 'The repository: a directory of wheels with its `release_log`' -r -F
complete -c vd-migrate -s j -l jobs -d 'Work on up to N hosts at once. The targets of one host share one SSH session and run one after another' -r
complete -c vd-migrate -l timeout -d 'Give up on a host whose name does not resolve, or that does not connect, greet or log in, within SECS seconds; also the keepalive interval while a command runs: a host that sends nothing, not even a reply to a keepalive, for three intervals is given up (a command that runs long on a host that answers is not)' -r
complete -c vd-migrate -l known-hosts -d 'Check host keys against FILE only, and record new ones there, instead of ~/.ssh/known_hosts (and /etc/ssh/ssh_known_hosts)' -r -F
complete -c vd-migrate -l always -d 'Act on every record that carries no error, whether it changed or not (by default only on records with `changed: true`)'
complete -c vd-migrate -l plan -d 'Apply nothing; list each target\'s pending migrations (Django\'s migrate --plan) in `pending`: {module: [migrations]}. Every record without an error is read, changed or not; nothing is logged. Django before 2.2 (by the record\'s `installed`) has no migrate --plan: its showmigrations --plan gives the same list, without the operations'
complete -c vd-migrate -l check -d 'As --plan, and exit 1 when any target has pending migrations, naming each such target and its migrations on stderr'
complete -c vd-migrate -l once -d 'Migrate each settings module on one target only: the first to get to it. The other targets with that module wait until it is done and record where in `migrated_elsewhere`: {module: target}; if it failed, they carry an error too, since their database is in the same state'
complete -c vd-migrate -l accept-new -d 'Connect to hosts whose key is not yet known, and record their key. A key that differs from the one on file is refused all the same'
complete -c vd-migrate -l json -d 'Write JSON lines even when stdout is a terminal (piped output always is)'
complete -c vd-migrate -s q -l quiet -d 'Write nothing on stderr but errors: no progress bar, no summary line, no warnings. Without it, at a terminal, the last tool of a pipeline shows a progress bar on stderr and ends with a summary line'
complete -c vd-migrate -s h -l help -d 'Print help (see more with \'--help\')'
complete -c vd-migrate -s V -l version -d 'Print version'
