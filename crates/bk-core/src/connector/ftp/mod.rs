//! FTP and FTPS servers, over bk-ftp: a repository in a server's directory
//! ([`FtpBackend`]), a dataset that lives there ([`FtpSource`], pull mode)
//! and a restore pushed back to one ([`FtpTarget`]).

mod backend;
mod source;
mod target;

pub use backend::FtpBackend;
pub use source::FtpSource;
pub use target::FtpTarget;

use crate::error::{Error, Result};

fn ftp_err(e: bk_ftp::Error) -> Error {
    Error::Invalid(e.to_string())
}

fn rel_str(rel: &[u8]) -> Result<&str> {
    std::str::from_utf8(rel)
        .map_err(|_| Error::Invalid("a path is not valid UTF-8 and cannot be used over FTP".into()))
}
