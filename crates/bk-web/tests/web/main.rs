//! bk-web's integration tests: full requests through `actix_web::test`
//! against a real repository, local folders and the embedded FTP server.

mod access;
mod cancel;
mod check;
mod common;
mod dashboard;
mod ftp;
mod ftp_logins;
mod names;
mod partial;
mod recover;
mod recover_names;
mod roundtrip;
mod security;
mod served;
