//! Room for records read ahead of the work: what keeps memory flat however
//! long the input, by stopping the reader while [`super::READ_AHEAD`]
//! records wait.

use std::sync::{Condvar, Mutex};

/// The reader takes a place per record, and a place is given back once the
/// work on that record is done (or it needs none), not once it is written:
/// a record held for the finish, or waiting for a slow one before it, must
/// not stop the reading that the finish waits for.
pub(super) struct Window {
    free: Mutex<usize>,
    freed: Condvar,
}

impl Window {
    pub(super) fn new(size: usize) -> Window {
        Window {
            free: Mutex::new(size),
            freed: Condvar::new(),
        }
    }

    /// Take a place, waiting for one to be given back when none is free.
    pub(super) fn take(&self) {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        while *free == 0 {
            free = self.freed.wait(free).unwrap_or_else(|e| e.into_inner());
        }
        *free -= 1;
    }

    /// Whether the reader has taken every place: it reads no more until
    /// some work is done.
    pub(super) fn is_full(&self) -> bool {
        *self.free.lock().unwrap_or_else(|e| e.into_inner()) == 0
    }

    pub(super) fn give(&self) {
        *self.free.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.freed.notify_one();
    }
}
