//! `~/.ssh/config`: the host aliases users already have, so `web1` in the
//! inventory reaches the same machine as `ssh web1`.
//!
//! vd understands `Host` and `Match` blocks (`all`, `host`, `originalhost`),
//! `Include`, the options that say where a host is: `HostName`, `User`,
//! `Port`, `IdentityFile`, and the ones that say how to get there:
//! `ProxyJump` (bastions, [`super::jump`]) and `ProxyCommand`
//! ([`super::proxy`]). As in OpenSSH the first value found wins (the first of
//! `ProxyJump` and `ProxyCommand`, too: they exclude each other), except
//! `IdentityFile`, which adds up. A `Match` vd cannot evaluate is an error
//! naming its file and line for the hosts that reach it: guessing could
//! quietly bypass a bastion. Other options are not vd's business and are
//! left to OpenSSH.

use super::jump::{self, Hop};
use super::name::{check_host, check_user};
use super::pattern;
use anyhow::{anyhow, bail, Context, Result};
use std::fs;
use std::path::{Path, PathBuf};

/// A parsed config file: its lines with their conditions, in order.
#[derive(Debug)]
pub struct SshConfig {
    lines: Vec<Line>,
    /// The blocks' conditions; `conditions[0]` is the top level.
    conditions: Vec<Condition>,
}

#[derive(Debug)]
struct Line {
    /// Index into `conditions` of the block this line is in (0 = top level).
    condition: usize,
    keyword: String,
    args: Vec<String>,
    /// The text after the keyword, unsplit (a `ProxyCommand` is a shell
    /// command line, given to the shell as written).
    rest: String,
    origin: String,
}

#[derive(Debug, Clone)]
enum Condition {
    Always,
    Host(Vec<String>),
    MatchAll,
    MatchHost(Vec<String>),
    MatchOriginalHost(Vec<String>),
    /// A `Match` vd cannot evaluate: an error for any host that reaches it.
    Unsupported(String),
}

/// What the config says about one host.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct HostConfig {
    pub hostname: Option<String>,
    pub user: Option<String>,
    pub port: Option<u16>,
    pub identity_files: Vec<PathBuf>,
    /// How to reach the host when not directly; `None` when nothing says.
    pub proxy: Option<Proxy>,
    /// `file line N` of the `ProxyJump` or `ProxyCommand`, for messages.
    pub proxy_origin: Option<String>,
}

/// A way to reach a host other than a TCP connection of vd's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proxy {
    /// `ProxyJump none` or `ProxyCommand none`: directly, whatever comes later.
    Direct,
    /// Through these bastions, the first one first.
    Jump(Vec<Hop>),
    /// Over the stdin and stdout of this command (`%h`, `%p`, `%r`, `%n`
    /// still to expand).
    Command(String),
}

impl Default for SshConfig {
    fn default() -> SshConfig {
        SshConfig {
            lines: Vec::new(),
            conditions: vec![Condition::Always],
        }
    }
}

impl SshConfig {
    /// Parse `path`; a missing file is an empty config.
    pub fn load(path: &Path, home: &Path) -> Result<SshConfig> {
        let mut config = SshConfig::default();
        if path.exists() {
            config.parse_file(path, home, 0, 0)?;
        }
        Ok(config)
    }

    /// Read the lines of `path` into the config; they start under the block
    /// `start` (the block an `Include` is in).
    fn parse_file(&mut self, path: &Path, home: &Path, start: usize, depth: usize) -> Result<()> {
        if depth > 16 {
            bail!("{}: Include nested too deeply", path.display());
        }
        let text =
            fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        let mut current = start;
        for (i, raw) in text.lines().enumerate() {
            let origin = format!("{} line {}", path.display(), i + 1);
            let words = split_words(raw).map_err(|e| anyhow!("{origin}: {e}"))?;
            let Some((keyword, args)) = words.split_first() else {
                continue;
            };
            let keyword = keyword.to_ascii_lowercase();
            match keyword.as_str() {
                "host" => {
                    self.conditions.push(Condition::Host(args.to_vec()));
                    current = self.conditions.len() - 1;
                }
                "match" => {
                    self.conditions.push(parse_match(args, &origin)?);
                    current = self.conditions.len() - 1;
                }
                "include" => {
                    for arg in args {
                        let expanded = expand_tilde(arg, home);
                        let full = if Path::new(&expanded).is_absolute() {
                            expanded
                        } else {
                            home.join(".ssh").join(expanded).display().to_string()
                        };
                        let mut found: Vec<PathBuf> = glob::glob(&full)
                            .map_err(|e| anyhow!("{origin}: bad Include pattern {arg:?}: {e}"))?
                            .filter_map(|p| p.ok())
                            .collect();
                        found.sort();
                        for file in found {
                            self.parse_file(&file, home, current, depth + 1)?;
                        }
                    }
                }
                _ => self.lines.push(Line {
                    condition: current,
                    keyword,
                    args: args.to_vec(),
                    rest: after_keyword(raw).to_string(),
                    origin,
                }),
            }
        }
        Ok(())
    }

    /// What applies to `host`, the name in the inventory.
    pub fn host(&self, host: &str, home: &Path) -> Result<HostConfig> {
        let mut found = HostConfig::default();
        for line in &self.lines {
            if !self.applies(line.condition, host, &line.origin)? {
                continue;
            }
            let first = line.args.first().map(String::as_str).unwrap_or("");
            match line.keyword.as_str() {
                "hostname" if found.hostname.is_none() => {
                    let hostname = first.replace("%h", host).replace("%%", "%");
                    check_host(&format!("{}: HostName", line.origin), &hostname)?;
                    found.hostname = Some(hostname);
                }
                "user" if found.user.is_none() => {
                    check_user(&format!("{}: User", line.origin), first)?;
                    found.user = Some(first.to_string());
                }
                "port" if found.port.is_none() => {
                    found.port = Some(first.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(
                        || anyhow!("{}: Port {first:?} is not a port number", line.origin),
                    )?);
                }
                "identityfile" => {
                    let path =
                        expand_tilde(&first.replace("%d", &home.display().to_string()), home)
                            .replace("%h", host)
                            .replace("%%", "%");
                    found.identity_files.push(PathBuf::from(path));
                }
                "proxyjump" if found.proxy.is_none() => {
                    found.proxy_origin = Some(line.origin.clone());
                    found.proxy = Some(if first.eq_ignore_ascii_case("none") {
                        Proxy::Direct
                    } else {
                        Proxy::Jump(
                            jump::parse_chain(&line.args.join(" "))
                                .with_context(|| format!("{}: ProxyJump", line.origin))?,
                        )
                    });
                }
                "proxycommand" if found.proxy.is_none() => {
                    found.proxy_origin = Some(line.origin.clone());
                    // The command is the rest of the line, as the shell will see it.
                    found.proxy = Some(if first.eq_ignore_ascii_case("none") {
                        Proxy::Direct
                    } else if line.args.is_empty() {
                        bail!("{}: ProxyCommand without a command", line.origin);
                    } else {
                        Proxy::Command(line.rest.clone())
                    });
                }
                _ => {}
            }
        }
        Ok(found)
    }

    fn applies(&self, condition: usize, host: &str, origin: &str) -> Result<bool> {
        let names = |v: &[String]| -> Vec<String> {
            v.iter()
                .flat_map(|a| a.split(',').map(str::to_string).collect::<Vec<_>>())
                .collect()
        };
        Ok(match &self.conditions[condition] {
            Condition::Always | Condition::MatchAll => true,
            Condition::Host(patterns) => pattern::list(patterns.iter().map(String::as_str), host),
            Condition::MatchHost(p) | Condition::MatchOriginalHost(p) => {
                pattern::list(names(p).iter().map(String::as_str), host)
            }
            Condition::Unsupported(what) => {
                bail!("{origin}: is under `Match {what}`, which vd cannot evaluate; use Host blocks for hosts vd reaches")
            }
        })
    }
}

fn parse_match(args: &[String], origin: &str) -> Result<Condition> {
    match args {
        [all] if all.eq_ignore_ascii_case("all") => Ok(Condition::MatchAll),
        [kind, patterns] if kind.eq_ignore_ascii_case("host") => {
            Ok(Condition::MatchHost(vec![patterns.clone()]))
        }
        [kind, patterns] if kind.eq_ignore_ascii_case("originalhost") => {
            Ok(Condition::MatchOriginalHost(vec![patterns.clone()]))
        }
        [] => bail!("{origin}: Match without criteria"),
        other => Ok(Condition::Unsupported(other.join(" "))),
    }
}

fn expand_tilde(path: &str, home: &Path) -> String {
    match path.strip_prefix("~/") {
        Some(rest) => home.join(rest).display().to_string(),
        None if path == "~" => home.display().to_string(),
        None => path.to_string(),
    }
}

/// What follows a line's keyword and its separator (spaces or `=`).
fn after_keyword(line: &str) -> &str {
    let line = line.trim();
    let rest = match line.find(|c: char| c.is_whitespace() || c == '=') {
        Some(i) => line[i..].trim_start(),
        None => "",
    };
    rest.strip_prefix('=').unwrap_or(rest).trim()
}

/// Split a config line into words: `Key value`, `Key=value`, double quotes
/// around words with spaces, `#` comments.
fn split_words(line: &str) -> Result<Vec<String>> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(Vec::new());
    }
    // The keyword may be followed by `=` instead of (or beside) whitespace.
    let keyword = match line.find(|c: char| c.is_whitespace() || c == '=') {
        Some(i) => &line[..i],
        None => line,
    };
    let rest = after_keyword(line);
    let mut words = vec![keyword.to_string()];
    let mut chars = rest.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        if c == '#' {
            break;
        }
        let mut word = String::new();
        if c == '"' {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some(ch) => word.push(ch),
                    None => bail!("unterminated quote"),
                }
            }
        } else {
            while let Some(&ch) = chars.peek() {
                if ch.is_whitespace() {
                    break;
                }
                word.push(ch);
                chars.next();
            }
        }
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> (tempfile::TempDir, SshConfig) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        fs::write(&path, text).unwrap();
        let config = SshConfig::load(&path, dir.path()).unwrap();
        (dir, config)
    }

    #[test]
    fn first_value_wins_and_identities_add_up() {
        let (dir, c) = config(
            "Host web*\n  HostName %h.example.com\n  User deploy\n  IdentityFile ~/.ssh/web\n\
             Host web1 !web2\n  Port 2222\n\
             Host *\n  User nobody\n  Port=22\n  IdentityFile \"/keys/all key\"\n",
        );
        let h = c.host("web1", dir.path()).unwrap();
        assert_eq!(h.hostname.as_deref(), Some("web1.example.com"));
        assert_eq!(h.user.as_deref(), Some("deploy"));
        assert_eq!(h.port, Some(2222));
        assert_eq!(
            h.identity_files,
            vec![dir.path().join(".ssh/web"), PathBuf::from("/keys/all key")]
        );
        let h = c.host("web2", dir.path()).unwrap();
        assert_eq!(h.port, Some(22));
        let h = c.host("db", dir.path()).unwrap();
        assert_eq!(h.hostname, None);
        assert_eq!(h.user.as_deref(), Some("nobody"));
    }

    #[test]
    fn proxies_are_read_and_the_first_one_wins() {
        let (dir, c) = config(
            "Host behind\n  ProxyJump deploy@bastion:2222,inner\n  ProxyCommand nc %h %p\n\
             Host direct\n  ProxyCommand none\n\
             Match host legacy\n  ProxyCommand=ssh -W '%h:%p' gw # through gw\n\
             Host *\n  ProxyJump fallback\n",
        );
        let h = c.host("behind", dir.path()).unwrap();
        let Some(Proxy::Jump(hops)) = h.proxy else {
            panic!("{h:?}")
        };
        assert_eq!(hops.len(), 2);
        assert_eq!(
            (hops[0].user.as_deref(), hops[0].host.as_str(), hops[0].port),
            (Some("deploy"), "bastion", Some(2222))
        );
        assert_eq!(hops[1].host, "inner");
        assert_eq!(
            c.host("direct", dir.path()).unwrap().proxy,
            Some(Proxy::Direct)
        );
        assert_eq!(
            c.host("legacy", dir.path()).unwrap().proxy,
            Some(Proxy::Command("ssh -W '%h:%p' gw # through gw".to_string()))
        );
        let Some(Proxy::Jump(hops)) = c.host("other", dir.path()).unwrap().proxy else {
            panic!()
        };
        assert_eq!(hops[0].host, "fallback");
    }

    #[test]
    fn a_bad_proxy_names_its_file_and_line() {
        let (dir, c) = config("Host a\n  User x\n  ProxyJump user@:22\nHost b\n  ProxyCommand\n");
        let e = format!("{:#}", c.host("a", dir.path()).unwrap_err());
        assert!(e.contains("config line 3") && e.contains("user@:22"), "{e}");
        let e = format!("{:#}", c.host("b", dir.path()).unwrap_err());
        assert!(
            e.contains("config line 5") && e.contains("without a command"),
            "{e}"
        );
    }

    #[test]
    fn names_a_shell_would_act_on_are_refused_with_their_line() {
        let (dir, c) = config(
            "Host a\n  HostName %h$(id).example\nHost b\n  User `id`\nHost c\n  HostName fe80::1%%eth0\n",
        );
        let e = format!("{:#}", c.host("a", dir.path()).unwrap_err());
        assert!(e.contains("config line 2: HostName"), "{e}");
        let e = format!("{:#}", c.host("b", dir.path()).unwrap_err());
        assert!(e.contains("config line 4: User"), "{e}");
        let h = c.host("c", dir.path()).unwrap();
        assert_eq!(h.hostname.as_deref(), Some("fe80::1%eth0"));
    }

    #[test]
    fn unsupported_match_is_an_error_not_a_guess() {
        let (dir, c) = config("Match exec \"true\"\n  User x\n");
        let e = c.host("a", dir.path()).unwrap_err().to_string();
        assert!(e.contains("Match exec true"), "{e}");
    }

    #[test]
    fn includes_are_read() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join(".ssh/conf.d")).unwrap();
        fs::write(
            dir.path().join(".ssh/conf.d/a.conf"),
            "Host inc\n  HostName included.example\n",
        )
        .unwrap();
        let path = dir.path().join("config");
        fs::write(&path, "Include conf.d/*.conf\nHost inc\n  HostName later\n").unwrap();
        let c = SshConfig::load(&path, dir.path()).unwrap();
        let h = c.host("inc", dir.path()).unwrap();
        assert_eq!(h.hostname.as_deref(), Some("included.example"));
    }
}
