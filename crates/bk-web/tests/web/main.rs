//! bk-web's integration tests: full requests through `actix_web::test`
//! against a real repository, local folders and the embedded FTP server.

mod access;
mod cancel;
mod check;
mod common;
mod ftp;
mod partial;
mod roundtrip;
mod security;
mod served;
