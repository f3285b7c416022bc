//! What a command hands back to `main`: the text for stdout and the exit
//! status. Commands build their whole output first, so `main` writes it once
//! and can treat a closed pipe (`daxguard scan | head`) as nothing wrong.

use std::io::IsTerminal;

use serde::Serialize;

/// Exit statuses, as documented in `--help` and docs/cli.md.
pub const EXIT_OK: u8 = 0;
pub const EXIT_REFUSED: u8 = 1;
pub const EXIT_UNJUDGED: u8 = 2;
pub const EXIT_DISAGREE: u8 = 3;

/// The JSON schema version; bumped only on incompatible changes.
pub const SCHEMA: u32 = 1;

pub struct Done {
    pub stdout: String,
    pub code: u8,
}

impl Done {
    pub fn new(stdout: String, code: u8) -> Self {
        Done { stdout, code }
    }
}

/// Pretty JSON plus a final newline.
pub fn json<T: Serialize>(value: &T) -> anyhow::Result<String> {
    Ok(serde_json::to_string_pretty(value)? + "\n")
}

/// An error with its own exit status (126/127 for `run`, 1 for `doctor`...);
/// every other error exits 2.
#[derive(Debug)]
pub struct Exit {
    pub code: u8,
    pub msg: String,
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for Exit {}

/// ANSI colours for human output: only on a terminal, never with NO_COLOR
/// (https://no-color.org: set and not empty), never in JSON.
#[derive(Clone, Copy)]
pub struct Style {
    on: bool,
}

impl Style {
    pub fn detect(json: bool) -> Self {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Style { on: !json && !no_color && std::io::stdout().is_terminal() }
    }

    fn paint(self, code: &str, s: &str) -> String {
        if self.on { format!("\x1b[{code}m{s}\x1b[0m") } else { s.to_string() }
    }

    pub fn red(self, s: &str) -> String {
        self.paint("1;31", s)
    }

    pub fn green(self, s: &str) -> String {
        self.paint("32", s)
    }

    pub fn yellow(self, s: &str) -> String {
        self.paint("33", s)
    }

    /// No colours (JSON messages).
    pub fn plain() -> Self {
        Style { on: false }
    }
}

/// `strerror` text without std's " (os error N)" suffix.
pub fn errno_text(errno: i32) -> String {
    let s = std::io::Error::from_raw_os_error(errno).to_string();
    match s.find(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// `0x` and lower-case hex, as /proc/PID/maps would show (without padding).
pub fn hex(v: u64) -> String {
    format!("{v:#x}")
}
