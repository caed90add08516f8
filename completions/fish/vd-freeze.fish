complete -c vd-freeze -s j -l jobs -d 'Work on up to N hosts at once. The targets of one host share one SSH session and run one after another' -r
complete -c vd-freeze -l timeout -d 'Give up on a host whose name does not resolve, or that does not connect, greet or log in, within SECS seconds; also the keepalive interval while a command runs: a host that sends nothing, not even a reply to a keepalive, for three intervals is given up (a command that runs long on a host that answers is not)' -r
complete -c vd-freeze -l known-hosts -d 'Check host keys against FILE only, and record new ones there, instead of ~/.ssh/known_hosts (and /etc/ssh/ssh_known_hosts)' -r -F
complete -c vd-freeze -l accept-new -d 'Connect to hosts whose key is not yet known, and record their key. A key that differs from the one on file is refused all the same'
complete -c vd-freeze -l json -d 'Write JSON lines even when stdout is a terminal (piped output always is)'
complete -c vd-freeze -s q -l quiet -d 'Write nothing on stderr but errors: no progress bar, no summary line, no warnings. Without it, at a terminal, the last tool of a pipeline shows a progress bar on stderr and ends with a summary line'
complete -c vd-freeze -s h -l help -d 'Print help (see more with \'--help\')'
complete -c vd-freeze -s V -l version -d 'Print version'
