//! The command-line reader shared by the xtask commands: `--flag value`,
//! `--flag=value` and bare switches, without a dependency.

use anyhow::{Context, Result};

/// Walks the arguments one flag at a time.
#[derive(Debug)]
pub struct Flags {
    it: std::vec::IntoIter<String>,
    /// The argument as given (for "unknown argument" messages).
    arg: String,
    /// The flag's name, without an `=value`.
    flag: String,
    /// The value after `=`, if the argument had one.
    inline: Option<String>,
}

impl Flags {
    pub fn new(args: Vec<String>) -> Self {
        Flags {
            it: args.into_iter(),
            arg: String::new(),
            flag: String::new(),
            inline: None,
        }
    }

    /// The next flag's name (`--scale` for `--scale=2` too).
    pub fn next_flag(&mut self) -> Option<String> {
        let arg = self.it.next()?;
        (self.flag, self.inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        self.arg = arg;
        Some(self.flag.clone())
    }

    /// The argument as it was given.
    pub fn arg(&self) -> &str {
        &self.arg
    }

    /// The current flag had no `=value` (a switch).
    pub fn bare(&self) -> bool {
        self.inline.is_none()
    }

    /// The current flag's value: after `=`, or the next argument.
    pub fn value(&mut self) -> Result<String> {
        match self.inline.take() {
            Some(v) => Ok(v),
            None => self
                .it
                .next()
                .with_context(|| format!("{} needs a value", self.flag)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_values_inline_and_separate_and_switches() {
        let args = ["--a", "1", "--b=2", "--keep", "x", "--c"];
        let mut f = Flags::new(args.iter().map(|s| s.to_string()).collect());
        assert_eq!(f.next_flag().as_deref(), Some("--a"));
        assert_eq!(f.value().unwrap(), "1");
        assert_eq!(f.next_flag().as_deref(), Some("--b"));
        assert!(!f.bare());
        assert_eq!(f.value().unwrap(), "2");
        assert_eq!(f.next_flag().as_deref(), Some("--keep"));
        assert!(f.bare());
        assert_eq!(f.next_flag().as_deref(), Some("x"));
        assert_eq!(f.arg(), "x");
        assert_eq!(f.next_flag().as_deref(), Some("--c"));
        assert_eq!(f.value().unwrap_err().to_string(), "--c needs a value");
        assert_eq!(f.next_flag(), None);
    }
}
