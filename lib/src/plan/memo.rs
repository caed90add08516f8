//! Plans remembered for the targets that share them. A fleet is mostly
//! targets of a few kinds (the same interpreter, installed set and
//! requirements): vd-diff resolves a kind once ([`Plans`]), turns its plan
//! into the record's JSON once ([`Planned`]), and, for records that come
//! as JSON lines, recognizes a kind seen before from the raw text of its
//! fields ([`Kinds`]) and writes the record back without reading it
//! whole.
//!
//! Memory stays flat: past [`MEMO_LIMIT`] kinds (a fleet of all-different
//! targets), what is remembered is forgotten.

use super::{Plan, Planner, Policy, Venv};
use crate::record::{
    self, Ahead, Changes, Error, Field, Installed, Markers, PlannedFrom, Python, RawRecord, Record,
    Target, Unchanged, VenvExists,
};
use crate::requirement::Requirements;
use std::collections::HashMap;
use std::rc::Rc;

/// How many distinct kinds of target keep their plan for the next target
/// of the same kind.
pub const MEMO_LIMIT: usize = 128;

/// Plans by everything they depend on (the interpreter's tags and markers,
/// the installed set, the requirements, the policy): targets of one kind
/// are resolved once.
#[derive(Default)]
pub struct Plans {
    known: HashMap<String, Result<Rc<Planned>, String>>,
}

impl Plans {
    /// The plan for `venv` from `sources`, which `requirements` names (two
    /// targets with the same name for their requirements have the same
    /// ones); planned by `planner` unless a target of the same kind was.
    /// On failure, every problem found, in one message.
    pub fn plan(
        &mut self,
        planner: &Planner,
        venv: &Venv,
        sources: &[&Requirements],
        requirements: &str,
        policy: Policy,
    ) -> Result<Rc<Planned>, String> {
        // The interpreter by its tags' identity, not its facts: those name
        // the venv's own paths, which do not change the plan.
        let key = serde_json::to_string(&(
            venv.tags.id(),
            venv.env,
            venv.installed,
            requirements,
            (policy.exact, policy.upgrade_deps, policy.unchanged),
        ))
        .expect("facts serialize");
        if let Some(plan) = self.known.get(&key) {
            return plan.clone();
        }
        let plan = planner
            .plan_target(venv, sources, policy)
            .map(|plan| Rc::new(Planned::from(plan)))
            .map_err(|problems| problems.join("; "));
        if self.known.len() >= MEMO_LIMIT {
            self.known.clear();
        }
        self.known.insert(key, plan.clone());
        plan
    }
}

/// Plans by the text of what they were made from, as the records carried
/// it ([`RawRecord`]): for a target of a kind seen before, vd-diff reads
/// its target fields only (to check them, as for any target) and writes
/// the record with its kind's plan, without reading or writing the
/// installed set and the interpreter's facts as values. Records alike in
/// what the plan depends on but not in its text (other spacing, another
/// venv path in the facts) still share the resolution, in [`Plans`].
#[derive(Default)]
pub struct Kinds {
    known: HashMap<Vec<u8>, Rc<Kind>>,
    /// The last key looked up, kept for [`Kinds::remember`].
    key: Vec<u8>,
}

/// One kind's plan, and its fields as the JSON text every record of the
/// kind gets.
pub struct Kind {
    pub plan: Rc<Planned>,
    planned_from: String,
}

impl Kinds {
    /// The fields that make a kind: what the plan and the fingerprint of
    /// the state it was made from are computed from.
    fn key_fields() -> impl Iterator<Item = &'static str> {
        [Markers::NAME, Installed::NAME, VenvExists::NAME]
            .into_iter()
            .chain(record::PLAN_COLUMNS.iter().copied())
    }

    /// The plan of the record's kind, if planned before, with the fields
    /// the record keeps once the big ones are left out (its target,
    /// checked as every target is). `None` sends the record the long way:
    /// a kind not seen yet, an error from an earlier tool, or a target
    /// whose fields do not parse (there it gets its error).
    pub fn find(&mut self, raw: &RawRecord) -> Option<(Rc<Kind>, Record)> {
        if raw.has(Error::NAME) {
            return None;
        }
        let names: Vec<&str> = Kinds::key_fields().collect();
        raw.key(&names, &mut self.key);
        let kind = self.known.get(&self.key)?.clone();
        // The interpreter's facts are in the key: checked with the kind.
        let left = raw
            .without(&[
                Python::NAME,
                Installed::NAME,
                Markers::NAME,
                Changes::NAME,
                Ahead::NAME,
                Unchanged::NAME,
                PlannedFrom::NAME,
            ])
            .ok()?;
        Target::parse(&left).ok()?;
        Some((kind, left))
    }

    /// Keep the plan of the record last looked up with [`Kinds::find`].
    pub fn remember(&mut self, raw: &RawRecord, plan: Rc<Planned>, planned_from: &str) {
        let names: Vec<&str> = Kinds::key_fields().collect();
        raw.key(&names, &mut self.key);
        if self.known.len() >= MEMO_LIMIT {
            self.known.clear();
        }
        let planned_from = serde_json::to_string(planned_from).expect("a string serializes");
        let kind = Kind { plan, planned_from };
        self.known.insert(self.key.clone(), Rc::new(kind));
    }
}

impl Kind {
    /// The record as a JSON line, with the fields [`set_plan`] writes.
    pub fn write(&self, raw: &RawRecord) -> String {
        let plan = &self.plan;
        let mut line = String::new();
        raw.write_with(
            &[
                (Changes::NAME, Some(&plan.changes_text)),
                (Ahead::NAME, Some(&plan.ahead_text)),
                (Unchanged::NAME, plan.unchanged_text.as_deref()),
                (PlannedFrom::NAME, Some(&self.planned_from)),
            ],
            &mut line,
        );
        line
    }
}

/// The plan, and the fingerprint of the state it was made from.
pub fn set_plan(record: &mut Record, plan: &Planned, planned_from: &str) {
    record::put_json::<Changes>(record, plan.changes.clone());
    record::put_json::<Ahead>(record, plan.ahead.clone());
    match &plan.unchanged {
        Some(unchanged) => record::put_json::<Unchanged>(record, unchanged.clone()),
        None => record::remove::<Unchanged>(record),
    }
    record::put(record, &PlannedFrom(planned_from.to_string()));
}

/// A plan as the record carries it, serialized once for every target that
/// shares it.
pub struct Planned {
    /// `plan`
    changes: serde_json::Value,
    /// `ahead`
    ahead: serde_json::Value,
    /// `unchanged`, for a target with generations (none when empty).
    unchanged: Option<serde_json::Value>,
    /// Whether there is anything to change (for `--check`).
    pub drift: bool,
    /// The same three as JSON text, for [`Kinds`].
    changes_text: String,
    ahead_text: String,
    unchanged_text: Option<String>,
}

impl From<Plan> for Planned {
    fn from(plan: Plan) -> Planned {
        let drift = !plan.changes.is_empty();
        let changes = serde_json::to_value(Changes(plan.changes)).expect("a plan serializes");
        let ahead = serde_json::to_value(Ahead(plan.ahead)).expect("a plan serializes");
        let unchanged = (!plan.unchanged.is_empty())
            .then(|| serde_json::to_value(Unchanged(plan.unchanged)).expect("a plan serializes"));
        let text = |value: &serde_json::Value| value.to_string();
        Planned {
            drift,
            changes_text: text(&changes),
            ahead_text: text(&ahead),
            unchanged_text: unchanged.as_ref().map(text),
            changes,
            ahead,
            unchanged,
        }
    }
}

/// A record without the fields a plan writes: for a target whose plan
/// failed, so no plan of an earlier run is taken for its own.
pub fn clear_plan(record: &mut Record) {
    record::remove::<Changes>(record);
    record::remove::<Ahead>(record);
    record::remove::<PlannedFrom>(record);
    record::remove::<Unchanged>(record);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Action, Change};

    fn planned() -> Rc<Planned> {
        Rc::new(Planned::from(Plan {
            changes: vec![Change {
                name: "django".into(),
                action: Action::Upgrade,
                from: Some("5.1".into()),
                to: Some("5.2".into()),
                wheel: Some("Django-5.2-py3-none-any.whl".into()),
                sha256: Some("ab".into()),
            }],
            ..Plan::default()
        }))
    }

    const WEB1: &str = r#"{"host": "web1", "venv": "/srv/a", "mine": [1, 2], "python": {"version": "3.12.1"}, "markers": {"os_name": "posix"}, "installed": {"django": "5.1"}, "plan": "stale"}"#;

    /// A record of a kind planned before comes out as it would the long way:
    /// read whole, its plan set, written by serde_json.
    #[test]
    fn a_known_kind_is_written_as_the_whole_record_would_be() {
        let mut kinds = Kinds::default();
        let web1 = RawRecord::parse(WEB1).unwrap();
        assert!(kinds.find(&web1).is_none(), "nothing planned yet");
        kinds.remember(&web1, planned(), "sha256:00");

        let text = WEB1.replace("web1", "web2");
        let web2 = RawRecord::parse(&text).unwrap();
        let (kind, left) = kinds.find(&web2).expect("the same kind");
        assert_eq!(left["host"], "web2");
        assert!(!left.contains_key("installed") && !left.contains_key("python"));

        let mut whole: Record = serde_json::from_str(&text).unwrap();
        set_plan(&mut whole, &kind.plan, "sha256:00");
        assert_eq!(
            kind.write(&web2),
            serde_json::to_string(&whole).unwrap() + "\n"
        );
    }

    #[test]
    fn another_installed_set_an_error_or_a_bad_target_is_not_a_known_kind() {
        let mut kinds = Kinds::default();
        kinds.remember(&RawRecord::parse(WEB1).unwrap(), planned(), "sha256:00");
        for other in [
            WEB1.replace("\"5.1\"", "\"5.0\""),
            WEB1.replace(
                "\"mine\"",
                "\"error\": {\"tool\": \"vd-freeze\", \"message\": \"x\"}, \"m\"",
            ),
            WEB1.replace("/srv/a", "relative"),
        ] {
            let raw = RawRecord::parse(&other).unwrap();
            assert!(kinds.find(&raw).is_none(), "{other}");
        }
    }

    #[test]
    fn a_failed_plan_leaves_no_plan_fields() {
        let mut record: Record = serde_json::from_str(WEB1).unwrap();
        set_plan(&mut record, &planned(), "sha256:00");
        assert!(record.contains_key("planned_from"));
        clear_plan(&mut record);
        for field in ["plan", "ahead", "unchanged", "planned_from"] {
            assert!(!record.contains_key(field), "{field}");
        }
        assert_eq!(record["mine"], serde_json::json!([1, 2]));
    }
}
