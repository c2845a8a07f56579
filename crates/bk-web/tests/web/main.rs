//! bk-web's integration tests: full requests through `actix_web::test`
//! against a real repository, local folders and the embedded FTP server.

mod cancel;
mod check;
mod common;
mod ftp;
mod ftp_logins;
mod partial;
mod roundtrip;
mod security;
