//! The one setting vd makes to the C allocator, and why: a fleet's workers
//! allocate from many threads, and glibc's malloc would give each of them
//! memory of its own that the others cannot reuse.
//!
//! glibc's malloc gives each thread that allocates an arena of its own, up
//! to eight per core, and memory freed in one arena serves only that one.
//! A fleet's workers (a thread per host at work) parse each host's output
//! into records that the writer frees later, so every arena keeps pages of
//! its own: with the default, vd-freeze's peak memory grew by a sixth with
//! the number of records read ahead. The workers mostly wait on the
//! network, so [`ARENAS`] arenas cost no time.
//!
//! Not for other allocators or libcs: there the setting does not exist,
//! and [`limit_arenas`] does nothing.

/// How many malloc arenas the process keeps.
pub const ARENAS: i32 = 2;

/// Limit malloc to [`ARENAS`] arenas. Call before the workers start;
/// calling it again is harmless.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)]
    // SAFETY: mallopt only sets a tunable of glibc's allocator; it takes
    // no pointers, and an arena limit may be set at any time.
    unsafe {
        nix::libc::mallopt(nix::libc::M_ARENA_MAX, ARENAS);
    }
}
