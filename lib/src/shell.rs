//! Shell quoting for every value vd puts into a remote command.
//!
//! Remote commands are strings run by the login shell of the remote user, so a
//! venv path such as `/srv/$(rm -rf ~)` must reach the shell as one inert word.
//! This is the one function that does that; nothing else in vd builds quoted
//! strings by hand.

/// Quote `word` for a POSIX shell: safe words stay as they are (readable
/// commands in logs and `--dry-run`), anything else is put in single quotes
/// with embedded single quotes written as `'\''`.
pub fn quote(word: &str) -> String {
    let safe = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b));
    if safe {
        return word.to_string();
    }
    let mut quoted = String::with_capacity(word.len() + 2);
    quoted.push('\'');
    for ch in word.chars() {
        if ch == '\'' {
            quoted.push_str("'\\''");
        } else {
            quoted.push(ch);
        }
    }
    quoted.push('\'');
    quoted
}

/// Quote every word and join them with spaces: one command line.
pub fn join<S: AsRef<str>>(words: &[S]) -> String {
    words
        .iter()
        .map(|w| quote(w.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn safe_words_stay_plain() {
        assert_eq!(quote("/srv/app/venv"), "/srv/app/venv");
        assert_eq!(quote("pip==23.1"), "pip==23.1");
    }

    #[test]
    fn dangerous_words_are_quoted() {
        for (word, quoted) in [
            ("", "''"),
            ("a b", "'a b'"),
            ("it's", "'it'\\''s'"),
            ("$(id)", "'$(id)'"),
        ] {
            assert_eq!(quote(word), quoted);
        }
    }

    #[test]
    fn the_shell_reads_back_every_word_unchanged() {
        let words = [
            "plain",
            "with space",
            "quote ' and \" double",
            "$(touch /tmp/vd-never) `id` ; | & > <",
            "new\nline",
            "*?[glob]",
            "~tilde",
            "",
        ];
        let script = format!("printf '%s\\0' {}", join(&words));
        let out = Command::new("sh").arg("-c").arg(&script).output().unwrap();
        let got: Vec<&str> = std::str::from_utf8(&out.stdout)
            .unwrap()
            .split_terminator('\0')
            .collect();
        assert_eq!(got, words);
    }
}
