//! Fault points for the crash tests. With `cargo xtask --test-crash-at N …`
//! (`XTASK_TEST_CRASH_AT`) the process kills itself with SIGKILL — no destructor, no cleanup, as
//! `kill -9` does — at the N-th point it passes; every point passed is named on stderr, so a test
//! can count them and sweep every one. The points are where the state on disk changes: before and
//! after each file is replaced, and while a tool runs. Without the flag a point costs one atomic
//! load.

use std::sync::atomic::{AtomicU64, Ordering};

static CRASH_AT: AtomicU64 = AtomicU64::new(0);
static PASSED: AtomicU64 = AtomicU64::new(0);

/// Kill the process at the `n`-th point (none: never).
pub(crate) fn arm(n: Option<u64>) {
    CRASH_AT.store(n.unwrap_or(0), Ordering::SeqCst);
}

/// A point where a kill leaves a state of its own on disk.
pub(crate) fn point(label: &str) {
    let at = CRASH_AT.load(Ordering::Relaxed);
    if at == 0 {
        return;
    }
    let n = PASSED.fetch_add(1, Ordering::SeqCst) + 1;
    eprintln!("xtask fault point {n}: {label}");
    if n == at {
        // SAFETY: kill(2) on our own pid; the process ends here.
        unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    }
}
