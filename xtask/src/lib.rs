//! The light part of xtask: the helpers every task shares ([`util`]), and the
//! repository rules as a test (`tidy`). Only anyhow, serde_json and libc, so
//! that `cargo xtask demo` on a fresh clone compiles little besides bk.

pub mod util;

#[cfg(test)]
mod tidy;
