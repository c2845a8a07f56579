//! SIGINT and SIGTERM as a cancel: the first asks the running operation to
//! stop cleanly (it checks the token between units of work); a second one
//! exits at once with 130, which is still safe: the repository stays valid
//! even under SIGKILL, and the next run removes what was left.

use anyhow::{Context, Result};
use bk_core::Cancel;
use signal_hook::consts::{SIGINT, SIGTERM};

use crate::exit;

/// A token cancelled by the first SIGINT or SIGTERM.
pub fn cancel_on_signals() -> Result<Cancel> {
    let cancel = Cancel::new();
    for sig in [SIGINT, SIGTERM] {
        // Registered first, so it runs before the flag is set: it exits only
        // when an earlier signal set it.
        signal_hook::flag::register_conditional_shutdown(
            sig,
            i32::from(exit::INTERRUPTED),
            cancel.flag(),
        )
        .context("installing the signal handlers")?;
        signal_hook::flag::register(sig, cancel.flag())
            .context("installing the signal handlers")?;
    }
    Ok(cancel)
}
