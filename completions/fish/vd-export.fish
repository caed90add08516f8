complete -c vd-export -l format -d 'What to write: a PEP 751 lock (pylock) or a CycloneDX JSON SBOM (cyclonedx)' -r -f -a "pylock\t'A PEP 751 pylock.toml'
cyclonedx\t'A CycloneDX 1.5 JSON SBOM'"
complete -c vd-export -l out -d 'The folder the files go into (created if missing)' -r -F
complete -c vd-export -l repo -d 'The repository: a directory of wheels with its `release_log`' -r -F
complete -c vd-export -l json -d 'Write JSON lines even when stdout is a terminal (piped output always is)'
complete -c vd-export -s q -l quiet -d 'Write nothing on stderr but errors: no progress bar, no summary line, no warnings. Without it, at a terminal, the last tool of a pipeline shows a progress bar on stderr and ends with a summary line'
complete -c vd-export -s h -l help -d 'Print help (see more with \'--help\')'
complete -c vd-export -s V -l version -d 'Print version'
