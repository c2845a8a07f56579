//! One module per command: its flags (`Args`) and its `run`, which parses
//! what the user typed, calls a bk-core operation and renders the result.

pub mod backup;
pub mod check;
pub mod diff;
pub mod init;
pub mod ls;
pub mod repair;
pub mod restore;
pub mod snapshots;
pub mod unlock;
pub mod web;
