//! OpenSSH's host patterns, shared by `~/.ssh/config` (`Host`, `Match host`)
//! and `known_hosts`: `*` and `?` wildcards, comparisons without case, and
//! lists where a matching `!pattern` rules a name out whatever else matches.

/// Whether `name` matches one wildcard pattern (`*` any run, `?` one char).
pub fn wildcard(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    let n: Vec<char> = name.to_lowercase().chars().collect();
    // Iterative matching with one backtrack point: linear in practice.
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Whether `name` matches a list of patterns: some positive pattern matches
/// and no negated one (`!pattern`) does.
pub fn list<'a>(patterns: impl IntoIterator<Item = &'a str>, name: &str) -> bool {
    let mut matched = false;
    for pattern in patterns {
        if let Some(negated) = pattern.strip_prefix('!') {
            if wildcard(negated, name) {
                return false;
            }
        } else if wildcard(pattern, name) {
            matched = true;
        }
    }
    matched
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(wildcard("*", "anything"));
        assert!(wildcard("web*", "WEB1.example.com"));
        assert!(wildcard("web?", "web1"));
        assert!(!wildcard("web?", "web12"));
        assert!(wildcard("*.example.com", "a.b.example.com"));
        assert!(!wildcard("*.example.com", "example.com"));
        assert!(wildcard("a*b*c", "aXXbYYc"));
        assert!(!wildcard("a*b*c", "aXXbYY"));
        assert!(wildcard("[127.0.0.1]:2222", "[127.0.0.1]:2222"));
    }

    #[test]
    fn negation_wins() {
        assert!(list(["web*", "!web3"], "web1"));
        assert!(!list(["web*", "!web3"], "web3"));
        assert!(!list(["!web3"], "db1"));
    }
}
