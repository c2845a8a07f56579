//! Operations: one module each, with options as plain data and a function
//! that runs it. The CLI and the web UI both call these; neither assembles a
//! pipeline of its own.

pub mod backup;
pub mod check;
pub mod diff;
pub mod ls;
pub mod repair;
pub mod restore;
