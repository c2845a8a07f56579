//! Integration tests of the `bk` binary: one test binary, a module per topic.

mod common;

mod badinput;
mod corrupt;
mod crash;
mod dedup;
mod ftp;
mod listing;
mod metadata;
mod roundtrip;
mod select;
