//! How many targets: `--canary N`, `--wave N|P%` and `--max-fail N|P%`.
//!
//! A count is taken as it is; a percentage is of the targets in the whole
//! input (records without an `error`), so it can only be turned into a
//! count once the input is counted. A wave's percentage rounds up (a wave
//! of 10% of 15 targets holds 2, and never none); a budget's rounds down
//! (10% of 15 allows 1 failure), so neither lets more through than asked.

/// A number of targets, or a share of them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Amount {
    Count(u64),
    /// Percent, more than 0 and at most 100.
    Percent(f64),
}

/// Which way a percentage of the targets rounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rounding {
    /// Up, and at least 1: the size of a wave.
    Up,
    /// Down: a budget of failures.
    Down,
}

impl Amount {
    /// `N` (at least `least`) or `P%` (more than 0, at most 100; `0%` too
    /// when `least` is 0); what is wrong in words, naming the text.
    pub fn parse(text: &str, least: u64) -> Result<Amount, String> {
        let text = text.trim();
        if let Some(percent) = text.strip_suffix('%') {
            let value: f64 = percent
                .trim()
                .parse()
                .ok()
                .filter(|p: &f64| p.is_finite())
                .ok_or_else(|| format!("{text:?} is not a percentage like 10%"))?;
            let floor = if least == 0 { 0.0 } else { f64::MIN_POSITIVE };
            if !(floor..=100.0).contains(&value) {
                let lowest = if least == 0 { "0%" } else { "more than 0%" };
                return Err(format!(
                    "{text:?} is not a percentage from {lowest} to 100%"
                ));
            }
            return Ok(Amount::Percent(value));
        }
        match text.parse::<u64>() {
            Ok(count) if count >= least => Ok(Amount::Count(count)),
            Ok(_) => Err(format!("{text:?} is less than {least}")),
            Err(_) => Err(format!(
                "{text:?} is neither a count of targets ({least} or more) nor a percentage like 10%"
            )),
        }
    }

    pub fn is_percent(&self) -> bool {
        matches!(self, Amount::Percent(_))
    }

    /// The count of targets this is, out of `total` (needed only for a
    /// percentage; see [`Amount::is_percent`]).
    pub fn of(&self, total: Option<u64>, rounding: Rounding) -> u64 {
        match (*self, total) {
            (Amount::Count(count), _) => count,
            (Amount::Percent(percent), Some(total)) => {
                let share = percent * total as f64 / 100.0;
                match rounding {
                    // Within a rounding error of a whole number is that number.
                    Rounding::Up => ((share - 1e-9).ceil() as u64).max(1),
                    Rounding::Down => (share + 1e-9).floor() as u64,
                }
            }
            (Amount::Percent(_), None) => {
                unreachable!("a percentage is resolved after the input is counted")
            }
        }
    }
}

impl std::fmt::Display for Amount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Amount::Count(count) => write!(f, "{count}"),
            Amount::Percent(percent) => write!(f, "{percent}%"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_percentages() {
        assert_eq!(Amount::parse("3", 1), Ok(Amount::Count(3)));
        assert_eq!(Amount::parse("0", 0), Ok(Amount::Count(0)));
        assert_eq!(Amount::parse("10%", 1), Ok(Amount::Percent(10.0)));
        assert_eq!(Amount::parse("2.5%", 1), Ok(Amount::Percent(2.5)));
        assert_eq!(Amount::parse("0%", 0), Ok(Amount::Percent(0.0)));
        for bad in ["0", "-1", "abc", "101%", "0%", "-5%", "%", "1.5", "nan%"] {
            let err = Amount::parse(bad, 1).unwrap_err();
            assert!(err.contains(&format!("{bad:?}")), "{bad}: {err}");
        }
    }

    #[test]
    fn waves_round_up_and_budgets_down() {
        let ten = Amount::Percent(10.0);
        assert_eq!(ten.of(Some(15), Rounding::Up), 2);
        assert_eq!(ten.of(Some(15), Rounding::Down), 1);
        assert_eq!(ten.of(Some(20), Rounding::Up), 2);
        assert_eq!(ten.of(Some(20), Rounding::Down), 2);
        assert_eq!(ten.of(Some(3), Rounding::Up), 1);
        assert_eq!(ten.of(Some(3), Rounding::Down), 0);
        assert_eq!(Amount::Percent(100.0).of(Some(7), Rounding::Down), 7);
        assert_eq!(Amount::Count(4).of(None, Rounding::Up), 4);
    }
}
