//! The signals that end a run (SIGINT, SIGTERM, SIGHUP) do not kill the xtask outright: a thread
//! of its own receives them, stops the tool that is running (TERM to its process group, KILL
//! after a grace period), and the run ends on its own terms: the phase recorded as interrupted,
//! the variant repo's files put back, exit status 128 + the signal (130, 143, 129).

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Once;
use std::time::Duration;

use anyhow::Result;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

/// The signal received, or 0.
static RECEIVED: AtomicI32 = AtomicI32::new(0);
/// The process group of the tool running now, or 0.
static GROUP: AtomicI32 = AtomicI32::new(0);

/// How long a tool may take to end after TERM before it is killed.
pub(crate) const GRACE: Duration = Duration::from_secs(10);

/// A run ended by a signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Interrupted(pub(crate) i32);

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "interrupted by {}", name(self.0))
    }
}

impl std::error::Error for Interrupted {}

fn name(signal: i32) -> &'static str {
    match signal {
        SIGINT => "SIGINT",
        SIGTERM => "SIGTERM",
        SIGHUP => "SIGHUP",
        _ => "a signal",
    }
}

/// Catches the signals from now on (once per process).
pub(crate) fn install() -> Result<()> {
    static INSTALLED: Once = Once::new();
    let mut outcome = Ok(());
    INSTALLED.call_once(|| {
        outcome = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])
            .map(|mut signals| {
                std::thread::spawn(move || {
                    for signal in signals.forever() {
                        RECEIVED.store(signal, Ordering::SeqCst);
                        stop_group(GROUP.load(Ordering::SeqCst));
                    }
                });
            })
            .map_err(anyhow::Error::from);
    });
    outcome
}

/// TERM to the group now, KILL after the grace period if it is still the one running.
fn stop_group(group: i32) {
    if group <= 0 {
        return;
    }
    // SAFETY: kill(2) with a negative pid signals a process group; no memory is involved.
    unsafe { libc::kill(-group, libc::SIGTERM) };
    std::thread::spawn(move || {
        std::thread::sleep(GRACE);
        if GROUP.load(Ordering::SeqCst) == group {
            // SAFETY: as above.
            unsafe { libc::kill(-group, libc::SIGKILL) };
        }
    });
}

/// The signal received so far, if any.
pub(crate) fn received() -> Option<Interrupted> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        signal => Some(Interrupted(signal)),
    }
}

/// Fails once a signal was received: a run checks before each step it starts.
pub(crate) fn check() -> Result<()> {
    match received() {
        Some(interrupted) => Err(interrupted.into()),
        None => Ok(()),
    }
}

/// The exit status for a run a signal ended: 128 + the signal.
pub(crate) fn exit_code() -> Option<u8> {
    received().map(|Interrupted(signal)| (128 + signal) as u8)
}

/// Registers the process group of the tool now running (stopped on a signal); `None` clears
/// it. A signal that came just before is acted on at once.
pub(crate) fn running_group(group: Option<u32>) {
    let group = group.map_or(0, |g| g as i32);
    GROUP.store(group, Ordering::SeqCst);
    if group > 0 && received().is_some() {
        stop_group(group);
    }
}
