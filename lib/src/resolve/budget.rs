//! The bound on one target's search, and on the words that explain a
//! failed one.
//!
//! Resolution is NP-complete: a repository whose metadata asks for pairwise
//! different versions (nine projects of eight versions each, every one
//! excluding the others' versions) makes pubgrub learn ever more
//! incompatibilities, past gigabytes, before it can say "no". Such metadata
//! is rare by accident and easy on purpose, and one target must not take the
//! whole run (and every record after it) down with it. So each target's
//! search gets a number of steps and a time; past either, that target fails
//! with an error that says so and what to do, and the other targets go on.
//! A closure without conflicts takes about two steps per project (a
//! decision and its propagation); the bound is far above that.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

/// Decisions and propagations pubgrub may make for one target.
pub const MAX_STEPS: u64 = 10_000;
/// Time one target's search may take, whatever its steps.
pub const MAX_TIME: Duration = Duration::from_secs(10);
/// The longest explanation of a failed resolution, in bytes: a person
/// reads it in an error line, the release log keeps it.
pub const MAX_EXPLANATION: usize = 8 << 10;
/// The most derivations an explanation tells (a node of pubgrub's tree
/// counted once per use): past that, telling it costs more memory than the
/// search did, and nobody reads it.
pub const MAX_DERIVATIONS: usize = 2_000;
/// How many projects the message names as the ones most in conflict.
const CULPRITS: usize = 5;

/// What one target's search has used so far.
pub(super) struct Budget {
    steps: Cell<u64>,
    started: Instant,
    /// Conflicts per project, as pubgrub last counted them: the projects to
    /// pin when the search gives up.
    conflicts: RefCell<HashMap<String, u32>>,
}

/// The search went past its bound.
#[derive(Debug)]
pub struct GaveUp {
    steps: u64,
    elapsed: Duration,
    culprits: Vec<String>,
}

impl Budget {
    pub fn new() -> Budget {
        Budget {
            steps: Cell::new(0),
            started: Instant::now(),
            conflicts: RefCell::new(HashMap::new()),
        }
    }

    /// Count one step; past the bound, why the search stops.
    pub fn step(&self) -> Result<(), GaveUp> {
        let steps = self.steps.get() + 1;
        self.steps.set(steps);
        let elapsed = self.started.elapsed();
        if steps <= MAX_STEPS && elapsed <= MAX_TIME {
            return Ok(());
        }
        Err(GaveUp {
            steps,
            elapsed,
            culprits: self.culprits(),
        })
    }

    /// Remember how many conflicts `name` was part of.
    pub fn note_conflicts(&self, name: &str, count: u32) {
        if count > 0 {
            self.conflicts.borrow_mut().insert(name.to_string(), count);
        }
    }

    /// Why a failed search is not explained in full, and what to do.
    pub fn too_large_to_explain(&self) -> String {
        let mut message = format!(
            "cannot resolve the requirements: the conflict takes more than {MAX_DERIVATIONS} derivations to tell, too many to explain"
        );
        let culprits = self.culprits();
        if !culprits.is_empty() {
            message.push_str(&format!(
                "; the projects most in conflict: {}",
                culprits.join(", ")
            ));
        }
        message.push_str(
            "; pin versions in the requirements (name==version) or add constraints (-c) for them",
        );
        message
    }

    /// The projects most in conflict, most first.
    fn culprits(&self) -> Vec<String> {
        let mut counted: Vec<(String, u32)> = self
            .conflicts
            .borrow()
            .iter()
            .map(|(n, c)| (n.clone(), *c))
            .collect();
        counted.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        counted.into_iter().take(CULPRITS).map(|(n, _)| n).collect()
    }
}

impl fmt::Display for GaveUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot resolve the requirements: gave up after {} steps and {:.1}s (the bound per target is {MAX_STEPS} steps or {}s): the repository's versions leave too many combinations to try",
            self.steps,
            self.elapsed.as_secs_f64(),
            MAX_TIME.as_secs()
        )?;
        if !self.culprits.is_empty() {
            write!(
                f,
                "; the projects most in conflict: {}",
                self.culprits.join(", ")
            )?;
        }
        write!(
            f,
            "; pin versions in the requirements (name==version) or add constraints (-c) for them"
        )
    }
}

impl std::error::Error for GaveUp {}

/// `text` cut to [`MAX_EXPLANATION`] bytes at a character boundary, saying
/// so when it was.
pub fn bounded_explanation(text: String) -> String {
    if text.len() <= MAX_EXPLANATION {
        return text;
    }
    let mut end = MAX_EXPLANATION;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{} … (cut: the explanation goes on for {} bytes; pin versions or add constraints to narrow it)",
        &text[..end],
        text.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_runs_out_and_names_the_projects_in_conflict() {
        let budget = Budget::new();
        budget.note_conflicts("a", 3);
        budget.note_conflicts("b", 7);
        budget.note_conflicts("c", 0);
        for _ in 0..MAX_STEPS {
            budget.step().unwrap();
        }
        let message = budget.step().unwrap_err().to_string();
        assert!(
            message.contains("gave up after 10001 steps")
                && message.contains("most in conflict: b, a;")
                && message.contains("pin versions"),
            "{message}"
        );
    }

    #[test]
    fn long_explanations_are_cut_at_a_character() {
        let short = "é".repeat(10);
        assert_eq!(bounded_explanation(short.clone()), short);
        let cut = bounded_explanation("é".repeat(MAX_EXPLANATION));
        assert!(cut.len() < MAX_EXPLANATION + 200, "{}", cut.len());
        assert!(cut.contains("goes on for 16384 bytes"), "{cut}");
    }
}
