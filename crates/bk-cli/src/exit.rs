//! Exit codes (documented in the README, "Exit codes").

/// The snapshot was committed, but some files could not be read (or, for
/// restore, some files could not be restored).
pub const PARTIAL: u8 = 3;
