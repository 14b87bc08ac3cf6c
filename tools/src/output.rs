//! A command's output, and why a command stopped.
//!
//! Everything goes through a locked stdout with `writeln!`, never
//! `println!` (which panics when the reader has gone: `wb inspect DIR |
//! head`). A closed stdout ends the command quietly with status 0, not the
//! 141 of a SIGPIPE death: the reader asked for no more and nothing failed,
//! and a `set -o pipefail` script does not see a failure that was not one.

use std::fmt::Display;
use std::io::{self, Write};
use std::process::ExitCode;

use serde::Serialize;

/// Why a command stopped before its end, and so its exit status.
#[derive(Debug)]
pub enum Stop {
    /// Stdout was closed by its reader: exit 0, no message.
    StdoutClosed,
    /// The command failed (or `wb verify`/`wb inspect` found corruption):
    /// exit 1.
    Failed(String),
    /// The path or the store cannot be used or checked: exit 2.
    CannotUse(String),
    /// The command has printed its verdict on stdout; exit with this
    /// status, no message.
    Verdict(u8),
}

impl Stop {
    /// The exit status this stop stands for.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Stop::StdoutClosed => ExitCode::SUCCESS,
            Stop::Failed(_) => ExitCode::from(1),
            Stop::CannotUse(_) => ExitCode::from(2),
            Stop::Verdict(code) => ExitCode::from(*code),
        }
    }

    /// What to tell the user on stderr, if anything.
    pub fn message(&self) -> Option<&str> {
        match self {
            Stop::StdoutClosed | Stop::Verdict(_) => None,
            Stop::Failed(m) | Stop::CannotUse(m) => Some(m),
        }
    }
}

impl From<String> for Stop {
    fn from(message: String) -> Self {
        Stop::Failed(message)
    }
}

fn stdout_error(e: io::Error) -> Stop {
    if e.kind() == io::ErrorKind::BrokenPipe {
        Stop::StdoutClosed
    } else {
        Stop::Failed(format!("writing to stdout: {e}"))
    }
}

/// Writes `text` and a newline to stdout.
pub fn line(text: impl Display) -> Result<(), Stop> {
    let mut out = io::stdout().lock();
    writeln!(out, "{text}").map_err(stdout_error)
}

/// Writes `value` as one pretty-printed JSON object.
pub fn json_pretty(value: &impl Serialize) -> Result<(), Stop> {
    let text = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
    line(text)
}

/// Writes `value` as one JSON object on one line.
pub fn json_line(value: &impl Serialize) -> Result<(), Stop> {
    let text = serde_json::to_string(value).map_err(|e| e.to_string())?;
    line(text)
}
