//! A small hand-written argument parser: `--flag`, `--opt VALUE` and `--opt=VALUE`.

use std::collections::VecDeque;

use crate::error::{Error, Result};

/// The arguments after the command name, consumed option by option.
#[derive(Debug)]
pub struct Args {
    rest: VecDeque<String>,
}

impl Args {
    /// Wraps the raw arguments.
    pub fn new(args: impl IntoIterator<Item = String>) -> Self {
        Self {
            rest: args.into_iter().collect(),
        }
    }

    /// Takes the next positional argument (the command).
    pub fn command(&mut self) -> Option<String> {
        self.rest.pop_front()
    }

    /// Whether `--name` was given (removes it).
    pub fn flag(&mut self, name: &str) -> bool {
        let before = self.rest.len();
        self.rest.retain(|a| a != name);
        self.rest.len() != before
    }

    /// The value of `--name VALUE` or `--name=VALUE` (removes it).
    pub fn value(&mut self, name: &str) -> Result<Option<String>> {
        let prefix = format!("{name}=");
        let Some(i) = self
            .rest
            .iter()
            .position(|a| a == name || a.starts_with(&prefix))
        else {
            return Ok(None);
        };
        let a = self.rest.remove(i).expect("index from position");
        if let Some(v) = a.strip_prefix(&prefix) {
            return Ok(Some(v.to_string()));
        }
        match self.rest.remove(i) {
            Some(v) => Ok(Some(v)),
            None => Err(Error::Usage(format!("{name} needs a value"))),
        }
    }

    /// The value of `--name N` as a number.
    pub fn number(&mut self, name: &str) -> Result<Option<u32>> {
        self.value(name)?
            .map(|v| {
                v.parse()
                    .map_err(|_| Error::Usage(format!("{name}: `{v}` is not a number")))
            })
            .transpose()
    }

    /// Fails if anything was not consumed.
    pub fn finish(self) -> Result<()> {
        match self.rest.front() {
            None => Ok(()),
            Some(a) => Err(Error::Usage(format!("unexpected argument `{a}`"))),
        }
    }
}

/// A memory size in MiB from `512M`, `1G`, `262144K` or `512` (plain numbers are MiB, as for
/// QEMU's `-m`); it must be a whole, non-zero number of MiB.
pub fn parse_mem_mib(s: &str) -> Result<u64> {
    let bad = || {
        Error::Usage(format!(
            "bad memory size `{s}`: use e.g. 512M, 1G or 262144K (whole MiB)"
        ))
    };
    let t = s.trim();
    let (digits, kib_per_unit) = match t.char_indices().last() {
        Some((i, 'K' | 'k')) => (&t[..i], 1u64),
        Some((i, 'M' | 'm')) => (&t[..i], 1 << 10),
        Some((i, 'G' | 'g')) => (&t[..i], 1 << 20),
        _ => (t, 1 << 10),
    };
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let kib = n.checked_mul(kib_per_unit).ok_or_else(bad)?;
    if kib == 0 || kib % 1024 != 0 || kib > (1 << 30) {
        return Err(bad());
    }
    Ok(kib / 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_mem_mib("512M").unwrap(), 512);
        assert_eq!(parse_mem_mib("512m").unwrap(), 512);
        assert_eq!(parse_mem_mib("2G").unwrap(), 2048);
        assert_eq!(parse_mem_mib("262144K").unwrap(), 256);
        assert_eq!(parse_mem_mib("768").unwrap(), 768);
        for bad in [
            "",
            "M",
            "0M",
            "1000K",
            "-1M",
            "1.5G",
            "12X",
            "99999999999999999G",
            "2048G",
        ] {
            assert!(parse_mem_mib(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn options() {
        let mut a = Args::new(
            [
                "run",
                "--vcpus=4",
                "--gdb",
                "--cmdline",
                "a b",
                "--mem",
                "1G",
            ]
            .map(String::from),
        );
        assert_eq!(a.command().as_deref(), Some("run"));
        assert!(a.flag("--gdb"));
        assert!(!a.flag("--gdb"));
        assert_eq!(a.number("--vcpus").unwrap(), Some(4));
        assert_eq!(a.value("--cmdline").unwrap().as_deref(), Some("a b"));
        assert_eq!(a.value("--kernel").unwrap(), None);
        assert_eq!(a.value("--mem").unwrap().as_deref(), Some("1G"));
        a.finish().unwrap();
        assert!(Args::new(["--mem".to_string()]).value("--mem").is_err());
        assert!(Args::new(["--vcpus=x".to_string()])
            .number("--vcpus")
            .is_err());
        assert!(Args::new(["--bogus".to_string()]).finish().is_err());
    }
}
