//! The hosts done with their targets so far whose sessions stay open, in
//! case more of their targets come: only the last [`super::IDLE_SESSIONS`]
//! to go idle, so a fleet of thousands keeps no thousands of sessions.

use crate::transport::Destination;
use std::collections::VecDeque;

/// Hosts done with their targets so far, sessions open, the longest idle
/// first.
pub(super) struct Idle {
    hosts: VecDeque<Destination>,
    limit: usize,
}

impl Idle {
    pub(super) fn new(limit: usize) -> Idle {
        Idle {
            hosts: VecDeque::new(),
            limit,
        }
    }

    /// `dest` went idle with its session open: the host whose session is to
    /// close now, if the limit is passed.
    pub(super) fn went_idle(&mut self, dest: &Destination) -> Option<Destination> {
        self.busy(dest);
        self.hosts.push_back(dest.clone());
        if self.hosts.len() > self.limit {
            self.hosts.pop_front()
        } else {
            None
        }
    }

    /// `dest` has work again (or is gone): it is not idle.
    pub(super) fn busy(&mut self, dest: &Destination) {
        self.hosts.retain(|d| d != dest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_last_hosts_to_go_idle_keep_their_sessions() {
        let dest = |host: &str| Destination {
            host: host.into(),
            port: None,
            user: None,
            via: Default::default(),
            identity: None,
            jump: None,
        };
        let mut idle = Idle::new(2);
        assert_eq!(idle.went_idle(&dest("a")), None);
        assert_eq!(idle.went_idle(&dest("b")), None);
        assert_eq!(idle.went_idle(&dest("c")), Some(dest("a")));
        // Idle again: the longest idle is now c.
        assert_eq!(idle.went_idle(&dest("b")), None);
        assert_eq!(idle.went_idle(&dest("d")), Some(dest("c")));
        // A host with work again is not idle, and is never closed for it.
        idle.busy(&dest("b"));
        assert_eq!(idle.went_idle(&dest("e")), None);
        assert_eq!(idle.went_idle(&dest("f")), Some(dest("d")));
    }
}
