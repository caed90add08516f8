complete -c vd-add -l repo -d 'The repository: a directory of wheels with its `release_log`' -r -F
complete -c vd-add -l json -d 'Write JSON lines even when stdout is a terminal (piped output always is)'
complete -c vd-add -s q -l quiet -d 'Write nothing on stderr but errors: no progress bar, no summary line, no warnings. Without it, at a terminal, the last tool of a pipeline shows a progress bar on stderr and ends with a summary line'
complete -c vd-add -s h -l help -d 'Print help (see more with \'--help\')'
complete -c vd-add -s V -l version -d 'Print version'
