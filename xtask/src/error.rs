//! The one error type of `cargo xtask`: every failure carries a message a person can act on.

use std::fmt;
use std::io;
use std::process::ExitStatus;

use crate::image::ElfError;

/// Why a command failed.
#[derive(Debug)]
pub enum Error {
    /// The command line was wrong; the message says how.
    Usage(String),
    /// A file-system operation failed.
    Io {
        /// What was being done, e.g. "reading build/guest/Image".
        context: String,
        /// The underlying error.
        source: io::Error,
    },
    /// A program could not be started (usually: it is not installed).
    Spawn {
        /// The program.
        program: String,
        /// The underlying error.
        source: io::Error,
    },
    /// A program ran and failed.
    CommandFailed {
        /// The command line, as a shell would show it.
        command: String,
        /// How it ended.
        status: ExitStatus,
    },
    /// The hypervisor ELF could not be turned into a flat binary.
    Elf(ElfError),
    /// Anything else, with a complete message (what went wrong, and what to do).
    Failed(String),
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Usage(m) => write!(f, "{m}\n(run `cargo xtask help` for usage)"),
            Self::Io { context, source } => write!(f, "{context}: {source}"),
            Self::Spawn { program, source } if source.kind() == io::ErrorKind::NotFound => {
                write!(f, "`{program}` not found: is it installed and on PATH?")
            }
            Self::Spawn { program, source } => write!(f, "could not start `{program}`: {source}"),
            Self::CommandFailed { command, status } => write!(f, "`{command}` failed ({status})"),
            Self::Elf(e) => write!(f, "converting the hypervisor ELF to a flat binary: {e}"),
            Self::Failed(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {}

impl From<ElfError> for Error {
    fn from(e: ElfError) -> Self {
        Self::Elf(e)
    }
}

/// Adds what was being done to an I/O error.
pub trait IoContext<T> {
    /// Wraps the error with `context`, computed only on failure.
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Io {
            context: context(),
            source,
        })
    }
}
