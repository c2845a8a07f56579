//! Exit codes (documented in the README, "Exit codes"), and how an error
//! maps to one.

use std::fmt;

/// The snapshot was committed, but some files could not be read (or, for
/// restore, some files could not be restored).
pub const PARTIAL: u8 = 3;
/// Any other failure.
pub const FAILED: u8 = 1;
/// The repository does not exist.
pub const NO_REPOSITORY: u8 = 10;
/// The repository is locked by a live process.
pub const LOCKED: u8 = 11;
/// Stopped by SIGINT or SIGTERM (128 + SIGINT, as shells report it).
pub const INTERRUPTED: u8 = 130;

/// An operation stopped by a signal, with what the user finds afterwards
/// ("nothing was committed").
#[derive(Debug)]
pub struct Interrupted(pub String);

impl fmt::Display for Interrupted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Interrupted {}

/// `e` as an anyhow error; a cancel becomes [`Interrupted`] saying `what`
/// is left.
pub fn interrupted(e: bk_core::Error, what: impl FnOnce() -> String) -> anyhow::Error {
    match e {
        bk_core::Error::Cancelled => Interrupted(what()).into(),
        e => e.into(),
    }
}

/// The exit code of a failed command.
pub fn code_of(e: &anyhow::Error) -> u8 {
    for cause in e.chain() {
        if cause.is::<Interrupted>() {
            return INTERRUPTED;
        }
        match cause.downcast_ref::<bk_core::Error>() {
            Some(bk_core::Error::NoRepository(_)) => return NO_REPOSITORY,
            Some(bk_core::Error::Locked { .. }) => return LOCKED,
            Some(bk_core::Error::Cancelled) => return INTERRUPTED,
            _ => {}
        }
    }
    FAILED
}
