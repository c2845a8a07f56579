//! Integration tests of the `bk` binary: one test binary, a module per topic.

mod common;

mod badinput;
mod corrupt;
mod crash;
mod dataloss;
mod dedup;
mod exitcodes;
mod ftp;
mod interrupt;
mod listing;
mod metadata;
mod mounts;
mod progress;
mod restore_safety;
mod retry;
mod robust;
mod roundtrip;
mod select;
mod web;
