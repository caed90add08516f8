complete -c vd-fetch -l dest -d 'Where the wheels are downloaded (created if missing)' -r -F
complete -c vd-fetch -l repo -d 'A repository whose wheels are not fetched again' -r -F
complete -c vd-fetch -l pip -d 'The Python whose pip downloads (its `pip` module, pip 20 or newer); by default the first python3 on PATH' -r
complete -c vd-fetch -s r -l requirement -d 'A requirements file, as pip reads it (-r); may be given more than once' -r -F
complete -c vd-fetch -l index-url -d 'The package index, passed to pip' -r
complete -c vd-fetch -l extra-index-url -d 'Another package index, passed to pip; may be given more than once' -r
complete -c vd-fetch -l find-links -d 'A folder or page of wheels, passed to pip; may be given more than once' -r
complete -c vd-fetch -l json -d 'Write JSON lines even when stdout is a terminal (piped output always is)'
complete -c vd-fetch -s q -l quiet -d 'Write nothing on stderr but errors: no progress bar, no summary line, no warnings. Without it, at a terminal, the last tool of a pipeline shows a progress bar on stderr and ends with a summary line'
complete -c vd-fetch -s h -l help -d 'Print help (see more with \'--help\')'
complete -c vd-fetch -s V -l version -d 'Print version'
