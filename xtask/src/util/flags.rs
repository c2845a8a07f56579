//! The command-line reader shared by the xtask commands: `--flag value`,
//! `--flag=value` and bare switches, without a dependency.

use std::ops::RangeInclusive;

use anyhow::{Context, Result, bail};

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

impl Flags {
    /// The current flag's value as a positive, finite number (`--scale`).
    pub fn positive_f64(&mut self) -> Result<f64> {
        let v = self.value()?;
        let x: f64 = v
            .parse()
            .with_context(|| format!("{} {v:?}: not a number", self.flag))?;
        if !(x.is_finite() && x > 0.0) {
            bail!("{} must be positive", self.flag);
        }
        Ok(x)
    }

    /// The current flag's value as a non-negative integer (`--seed`).
    pub fn u64(&mut self) -> Result<u64> {
        let v = self.value()?;
        v.parse()
            .with_context(|| format!("{} {v:?}: not a non-negative integer", self.flag))
    }

    /// The current flag's value as a comma-separated list (empty items dropped).
    pub fn list(&mut self) -> Result<Vec<String>> {
        Ok(self
            .value()?
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect())
    }
}

/// `LO-HI` as a port range (`--passive-ports`); `None` if it is not one.
pub fn port_range(v: &str) -> Option<RangeInclusive<u16>> {
    let (lo, hi) = v.split_once('-')?;
    let (lo, hi) = (lo.parse::<u16>().ok()?, hi.parse::<u16>().ok()?);
    (lo > 0 && lo <= hi).then_some(lo..=hi)
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

    #[test]
    fn reads_typed_values_and_names_the_flag_in_errors() {
        let args = [
            "--scale=0.5",
            "--scale",
            "0",
            "--seed",
            "-1",
            "--tools",
            "a, ,b",
        ];
        let mut f = Flags::new(args.iter().map(|s| s.to_string()).collect());
        f.next_flag();
        assert_eq!(f.positive_f64().unwrap(), 0.5);
        f.next_flag();
        assert_eq!(
            f.positive_f64().unwrap_err().to_string(),
            "--scale must be positive"
        );
        f.next_flag();
        assert_eq!(
            f.u64().unwrap_err().to_string(),
            "--seed \"-1\": not a non-negative integer"
        );
        f.next_flag();
        assert_eq!(f.list().unwrap(), ["a", "b"]);
        assert_eq!(port_range("19000-19499"), Some(19000..=19499));
        assert_eq!(port_range("0-10"), None);
        assert_eq!(port_range("20-10"), None);
        assert_eq!(port_range("testkit"), None);
    }
}
