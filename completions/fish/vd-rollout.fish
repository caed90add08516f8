complete -c vd-rollout -l canary -d 'Release the first N targets alone, as the first wave' -r
complete -c vd-rollout -l wave -d 'Release N targets, or P% of the input\'s targets (rounded up), per wave after the canary. Without it, the rest go out in one wave' -r
complete -c vd-rollout -l max-fail -d 'Stop once more than N targets, or more than P% of the input\'s targets (rounded down), failed in the whole run' -r
complete -c vd-rollout -l pause -d 'After each wave (the last too), wait DURATION (30s, 2m), then run each of the wave\'s released targets\' `check` again, as vd-reload does, over the same transport (tried 3 times, 1s apart and then twice as long); a failure is that target\'s error and counts' -r
complete -c vd-rollout -l repo -d 'The repository: a directory of wheels with its `release_log`' -r -F
complete -c vd-rollout -s j -l jobs -d 'Work on up to N hosts at once. The targets of one host share one SSH session and run one after another' -r
complete -c vd-rollout -l timeout -d 'Give up on a host whose name does not resolve, or that does not connect, greet or log in, within SECS seconds; also the keepalive interval while a command runs: a host that sends nothing, not even a reply to a keepalive, for three intervals is given up (a command that runs long on a host that answers is not)' -r
complete -c vd-rollout -l known-hosts -d 'Check host keys against FILE only, and record new ones there, instead of ~/.ssh/known_hosts (and /etc/ssh/ssh_known_hosts)' -r -F
complete -c vd-rollout -l revert-wave -d 'When a wave takes the rollout past its budget, switch that wave\'s released targets that changed back to the generation before the one COMMAND made (their record\'s `generation`), as vd-rollback does, then run their reload and check, as vd-reload does: they get `rolled_back`: {from, to}, and `rollout`.reverted_wave: true, and a `rollback` event is logged. A target without generations cannot be switched back: that is its error'
complete -c vd-rollout -l accept-new -d 'Connect to hosts whose key is not yet known, and record their key. A key that differs from the one on file is refused all the same'
complete -c vd-rollout -l json -d 'Write JSON lines even when stdout is a terminal (piped output always is)'
complete -c vd-rollout -s q -l quiet -d 'Write nothing on stderr but errors: no progress bar, no summary line, no warnings. Without it, at a terminal, the last tool of a pipeline shows a progress bar on stderr and ends with a summary line'
complete -c vd-rollout -s h -l help -d 'Print help (see more with \'--help\')'
complete -c vd-rollout -s V -l version -d 'Print version'
