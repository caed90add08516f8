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

use crate::console;
use crate::escape;
use crate::output::render_table;
use crate::record::{self, target_label, Changes, Line, Record, Skipped};
use anyhow::{Context, Result};
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
        let label = escape::cell(&target_label(record)).into_owned();
        let table = plan_table(record);
        // The terminal is the question's until it is answered: no progress
        // bar is drawn and no table row written there meanwhile. The line
        // the question starts on may hold a bar: it is cleared first.
        let _turn = console::prompt_turn();
        write!(self.output, "\r\x1b[K\n{label}\n{table}")?;
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

/// The records the hosts' workers get: `input`, record for record, with
/// every record that has a plan put to the person first (by `ask`, which
/// shows it and returns the answer) and marked `skipped` when declined.
/// Records with an `error` and records with nothing to do pass as they are.
/// The questions are asked as the records are taken, so by the thread that
/// reads the input, one at a time and in input order.
pub fn confirmed(
    input: impl Iterator<Item = Line>,
    mut ask: impl FnMut(&Record) -> Answer,
) -> impl Iterator<Item = Line> {
    let mut mode = Answer::Yes;
    input.map(move |mut line| {
        confirm(&mut line.record, &mut ask, &mut mode);
        line
    })
}

/// Put one record to the person, unless `mode` is `All` or `Quit` (once
/// the person said so), and mark it `skipped` when declined.
fn confirm(record: &mut Record, ask: &mut impl FnMut(&Record) -> Answer, mode: &mut Answer) {
    if record::error_of(record).is_some() {
        return;
    }
    // A `skipped` from an earlier run is not this run's answer.
    record::remove::<Skipped>(record);
    let has_work = matches!(Changes::of(record), Ok(Some(Changes(c))) if !c.is_empty());
    if !has_work {
        return;
    }
    let answer = match *mode {
        Answer::All | Answer::Quit => *mode,
        _ => ask(record),
    };
    if matches!(answer, Answer::All | Answer::Quit) {
        *mode = answer;
    }
    if matches!(answer, Answer::No | Answer::Quit) {
        record::put(record, &Skipped(true));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::lines;

    #[test]
    fn answers_in_words_or_letters() {
        assert_eq!(Answer::parse(" Y\n"), Some(Answer::Yes));
        assert_eq!(Answer::parse("no"), Some(Answer::No));
        assert_eq!(Answer::parse("ALL"), Some(Answer::All));
        assert_eq!(Answer::parse("q"), Some(Answer::Quit));
        assert_eq!(Answer::parse(""), None);
        assert_eq!(Answer::parse("yep"), None);
    }

    /// Confirm `input` with the answers given in turn; the records that
    /// came out, and which ones were asked about (by `host`).
    fn run(input: Vec<Line>, answers: &[Answer]) -> (Vec<Record>, Vec<String>) {
        let mut answers = answers.iter().copied();
        let mut asked = Vec::new();
        let out = confirmed(input.into_iter(), |r: &Record| {
            asked.push(r["host"].as_str().unwrap().to_string());
            answers.next().expect("asked once too often")
        })
        .map(|l| l.record)
        .collect();
        (out, asked)
    }

    fn skipped(records: &[Record]) -> Vec<bool> {
        records.iter().map(|r| r.contains_key("skipped")).collect()
    }

    #[test]
    fn asks_only_about_targets_with_work_and_keeps_order() {
        let plan = serde_json::json!([{"name": "six", "action": "install"}]);
        let input = lines(serde_json::json!([
            {"host": "a", "plan": plan},
            {"host": "b", "plan": []},
            {"host": "c", "plan": plan, "error": {"tool": "vd-diff", "message": "x"}},
            {"host": "d", "plan": plan, "skipped": true},
            {"host": "e", "plan": plan},
        ]));
        let (out, asked) = run(input, &[Answer::Yes, Answer::No, Answer::Yes]);
        assert_eq!(asked, ["a", "d", "e"]);
        let hosts: Vec<&str> = out.iter().map(|r| r["host"].as_str().unwrap()).collect();
        assert_eq!(hosts, ["a", "b", "c", "d", "e"]);
        assert_eq!(skipped(&out), [false, false, false, true, false]);
    }

    #[test]
    fn all_and_quit_answer_for_the_rest() {
        let plan = serde_json::json!([{"name": "six", "action": "install"}]);
        let four = || {
            lines(serde_json::json!([
                {"host": "a", "plan": plan}, {"host": "b", "plan": plan},
                {"host": "c", "plan": plan}, {"host": "d", "plan": plan},
            ]))
        };
        let (out, asked) = run(four(), &[Answer::No, Answer::All]);
        assert_eq!(asked, ["a", "b"]);
        assert_eq!(skipped(&out), [true, false, false, false]);
        let (out, asked) = run(four(), &[Answer::Yes, Answer::Quit]);
        assert_eq!(asked, ["a", "b"]);
        assert_eq!(skipped(&out), [false, true, true, true]);
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
