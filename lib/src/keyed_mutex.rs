//! Mutexes by name, made on first use: the way vd-migrate keeps two targets
//! that share a settings module (and so, as far as vd can tell, a database)
//! from migrating at the same time while everything else runs in parallel.
//!
//! Only the threads of one tool run share it; it is not a file lock between
//! processes (two vd-migrate runs on one database are the user's to avoid,
//! as with any two deployments at once).

use std::collections::HashSet;
use std::sync::{Condvar, Mutex, MutexGuard};

/// A set of named mutexes.
#[derive(Default)]
pub struct KeyedMutex {
    held: Mutex<HashSet<String>>,
    freed: Condvar,
}

/// `key`, held until this is dropped.
pub struct Held<'a> {
    mutex: &'a KeyedMutex,
    key: String,
}

impl KeyedMutex {
    pub fn new() -> KeyedMutex {
        KeyedMutex::default()
    }

    /// Wait until nobody holds `key`, then hold it.
    pub fn hold(&self, key: &str) -> Held<'_> {
        let mut held = self.set();
        while held.contains(key) {
            held = self.freed.wait(held).unwrap_or_else(|e| e.into_inner());
        }
        held.insert(key.to_string());
        Held {
            mutex: self,
            key: key.to_string(),
        }
    }

    /// The set of held keys. A thread that panicked while holding the mutex
    /// left the set consistent (insert and remove are single steps).
    fn set(&self) -> MutexGuard<'_, HashSet<String>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.mutex.set().remove(&self.key);
        self.mutex.freed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[test]
    fn one_holder_per_key_and_keys_are_independent() {
        let mutex = KeyedMutex::new();
        let inside = [AtomicUsize::new(0), AtomicUsize::new(0)];
        let most = [AtomicUsize::new(0), AtomicUsize::new(0)];
        std::thread::scope(|scope| {
            for i in 0..8 {
                let (mutex, inside, most) = (&mutex, &inside, &most);
                scope.spawn(move || {
                    let k = i % 2;
                    let _held = mutex.hold(["a", "b"][k]);
                    let now = inside[k].fetch_add(1, Ordering::SeqCst) + 1;
                    most[k].fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(20));
                    inside[k].fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        assert_eq!(most[0].load(Ordering::SeqCst), 1);
        assert_eq!(most[1].load(Ordering::SeqCst), 1);
        // Free again once every holder is gone.
        drop(mutex.hold("a"));
        drop(mutex.hold("a"));
    }
}
