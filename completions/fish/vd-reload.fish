complete -c vd-reload -l repo -d 'The repository: a directory of wheels with its `release_log`' -r -F
complete -c vd-reload -l check-tries -d 'Run a target\'s `check` up to N times before calling it failed' -r
complete -c vd-reload -l check-delay -d 'The wait before the first retry of a failing check, in seconds or with a unit (500ms, 2s); each later wait is twice the one before' -r
complete -c vd-reload -s j -l jobs -d 'Work on up to N hosts at once. The targets of one host share one SSH session and run one after another' -r
complete -c vd-reload -l timeout -d 'Give up on a host whose name does not resolve, or that does not connect, greet or log in, within SECS seconds; also the keepalive interval while a command runs: a host that sends nothing, not even a reply to a keepalive, for three intervals is given up (a command that runs long on a host that answers is not)' -r
complete -c vd-reload -l known-hosts -d 'Check host keys against FILE only, and record new ones there, instead of ~/.ssh/known_hosts (and /etc/ssh/ssh_known_hosts)' -r -F
complete -c vd-reload -l always -d 'Act on every record that carries no error, whether it changed or not (by default only on records with `changed: true`)'
complete -c vd-reload -l revert -d 'When the reload or the check of a target with generations fails, switch it back to the generation before the one vd-push made (its record\'s `generation`), reload and check again, and add `reverted`: {from, to}. The record keeps its error and the exit status is 1: the deploy failed. Targets with `reload_once` that failed are switched back together, and their reload commands and checks run once more'
complete -c vd-reload -l accept-new -d 'Connect to hosts whose key is not yet known, and record their key. A key that differs from the one on file is refused all the same'
complete -c vd-reload -l json -d 'Write JSON lines even when stdout is a terminal (piped output always is)'
complete -c vd-reload -s q -l quiet -d 'Write nothing on stderr but errors: no progress bar, no summary line, no warnings. Without it, at a terminal, the last tool of a pipeline shows a progress bar on stderr and ends with a summary line'
complete -c vd-reload -s h -l help -d 'Print help (see more with \'--help\')'
complete -c vd-reload -s V -l version -d 'Print version'
