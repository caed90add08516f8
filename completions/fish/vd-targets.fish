complete -c vd-targets -s i -l inventory -d 'The inventory: CSV with a header row, or .jsonl target records' -r -F
complete -c vd-targets -l json -d 'Write JSON lines even when stdout is a terminal (piped output always is)'
complete -c vd-targets -s q -l quiet -d 'Write nothing on stderr but errors: no progress bar, no summary line, no warnings. Without it, at a terminal, the last tool of a pipeline shows a progress bar on stderr and ends with a summary line'
complete -c vd-targets -s h -l help -d 'Print help (see more with \'--help\')'
complete -c vd-targets -s V -l version -d 'Print version'
