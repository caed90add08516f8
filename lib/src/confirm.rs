//! `vd-push --confirm`: each target's plan put to the person at the
//! terminal before anything is done to that target.
//!
//! stdin is the pipeline, so the questions go to `/dev/tty` and the answers
//! come from there. The prompts are asked by one thread, the one that reads
//! the input, in input order and one at a time, before a record is handed on
//! to the hosts' workers: a target is confirmed before its work starts, and
//! targets already confirmed are pushed (hosts in parallel) while the next
//! question waits for its answer. A declined target is marked `skipped` and
//! passes through unchanged; `quit` declines it and every target after it.

use crate::output::render_table;
use crate::record::{self, target_label, Changes, Record, Skipped};
use anyhow::{Context, Result};
use serde_json::Value;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};

/// The answer to one prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Yes,
    No,
    /// This target and every later one, without asking again.
    All,
    /// Not this target, nor any later one.
    Quit,
}

impl Answer {
    /// The answer a person typed, if it is one.
    pub fn parse(text: &str) -> Option<Answer> {
        match text.trim().to_ascii_lowercase().as_str() {
            "y" | "yes" => Some(Answer::Yes),
            "n" | "no" => Some(Answer::No),
            "a" | "all" => Some(Answer::All),
            "q" | "quit" => Some(Answer::Quit),
            _ => None,
        }
    }
}

/// The controlling terminal, opened for questions and answers.
pub struct Terminal {
    input: BufReader<File>,
    output: File,
}

impl Terminal {
    /// Open `/dev/tty`; an error when there is no terminal (cron).
    pub fn open() -> Result<Terminal> {
        let open = || OpenOptions::new().read(true).write(true).open("/dev/tty");
        let tty = open().context(
            "--confirm asks on the terminal (/dev/tty), and there is none: run without \
             --confirm to push without asking",
        )?;
        Ok(Terminal {
            input: BufReader::new(tty.try_clone()?),
            output: tty,
        })
    }

    /// Show the target's plan and ask until the answer is one of the four;
    /// the end of the terminal's input is `quit`.
    pub fn ask(&mut self, record: &Record) -> io::Result<Answer> {
        let label = target_label(record);
        let table = plan_table(record);
        write!(self.output, "\n{label}\n{table}")?;
        loop {
            write!(self.output, "Push to {label}? [y]es, [n]o, [a]ll, [q]uit: ")?;
            self.output.flush()?;
            let mut line = String::new();
            if self.input.read_line(&mut line)? == 0 {
                writeln!(self.output, "\n(end of input: quit)")?;
                return Ok(Answer::Quit);
            }
            if let Some(answer) = Answer::parse(&line) {
                return Ok(answer);
            }
        }
    }
}

/// A target's plan as the prompt shows it.
fn plan_table(record: &Record) -> String {
    let Ok(Some(Changes(plan))) = Changes::of(record) else {
        return String::new();
    };
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    let rows: Vec<Vec<String>> = plan
        .iter()
        .map(|c| {
            vec![
                c.action.as_str().to_string(),
                c.name.clone(),
                text(&c.from),
                text(&c.to),
                text(&c.wheel),
            ]
        })
        .collect();
    render_table(&["ACTION", "NAME", "FROM", "TO", "WHEEL"], &rows)
        .lines()
        .map(|l| format!("  {l}\n"))
        .collect()
}

/// The input the hosts' workers read: `input`, line for line, with every
/// record that has a plan put to the person first and marked `skipped` when
/// declined. Lines that are not records, records with an `error` and records
/// with nothing to do pass as they are.
pub fn confirmed_input(
    input: impl BufRead + Send + 'static,
    mut terminal: Terminal,
) -> Result<impl BufRead + Send + 'static> {
    let (reader, mut writer) = io::pipe().context("cannot make a pipe")?;
    std::thread::spawn(move || {
        let mut mode = Answer::Yes;
        for line in input.split(b'\n') {
            let Ok(line) = line else { break };
            let line = match confirm_line(&line, &mut terminal, &mut mode) {
                Some(edited) => edited,
                None => line,
            };
            if writer
                .write_all(&line)
                .and_then(|_| writer.write_all(b"\n"))
                .is_err()
            {
                return;
            }
        }
    });
    Ok(BufReader::new(reader))
}

/// The line to pass on for one input line, when it is not the line itself.
/// `mode` is `All` or `Quit` once the person said so.
fn confirm_line(line: &[u8], terminal: &mut Terminal, mode: &mut Answer) -> Option<Vec<u8>> {
    let Ok(Value::Object(mut record)) = serde_json::from_slice::<Value>(line) else {
        return None;
    };
    if record::error_of(&record).is_some() {
        return None;
    }
    let had_skipped = record::has::<Skipped>(&record);
    record::remove::<Skipped>(&mut record);
    let has_work = matches!(Changes::of(&record), Ok(Some(Changes(c))) if !c.is_empty());
    if has_work {
        let answer = match *mode {
            Answer::All | Answer::Quit => *mode,
            _ => terminal.ask(&record).unwrap_or(Answer::Quit),
        };
        if matches!(answer, Answer::All | Answer::Quit) {
            *mode = answer;
        }
        if matches!(answer, Answer::No | Answer::Quit) {
            record::put(&mut record, &Skipped(true));
        }
    } else if !had_skipped {
        return None;
    }
    Some(serde_json::to_vec(&record).expect("a record serializes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_in_words_or_letters() {
        assert_eq!(Answer::parse(" Y\n"), Some(Answer::Yes));
        assert_eq!(Answer::parse("no"), Some(Answer::No));
        assert_eq!(Answer::parse("ALL"), Some(Answer::All));
        assert_eq!(Answer::parse("q"), Some(Answer::Quit));
        assert_eq!(Answer::parse(""), None);
        assert_eq!(Answer::parse("yep"), None);
    }

    #[test]
    fn the_prompt_shows_every_change() {
        let record = serde_json::json!({"plan": [
            {"name": "six", "action": "upgrade", "from": "1.15.0", "to": "1.16.0",
             "wheel": "six-1.16.0-py2.py3-none-any.whl"},
            {"name": "old", "action": "remove", "from": "2.0", "to": null},
        ]});
        let table = plan_table(record.as_object().unwrap());
        assert_eq!(
            table,
            "  ACTION   NAME  FROM    TO      WHEEL\n  \
             upgrade  six   1.15.0  1.16.0  six-1.16.0-py2.py3-none-any.whl\n  \
             remove   old   2.0\n"
        );
    }
}
