//! Errors: [`ParseError`] from the byte-level parsers (with the input line),
//! [`LoadError`] from the file layer (with the path), displayed as `path:line: message`.

use std::path::PathBuf;

/// Why bytes could not be read as a report. Every variant carries the 1-based input line
/// where the problem was found (0 when the input is empty).
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// The input is empty or only whitespace.
    #[error("empty input")]
    Empty,
    /// No supported format was recognised.
    #[error("unrecognized input: {hint}")]
    Unrecognized {
        /// Line the detector looked at.
        line: u64,
        /// What was seen.
        hint: String,
    },
    /// JSON that does not parse (truncated or corrupt `.ips`, log JSON).
    #[error("invalid JSON in {what}: {message}")]
    Json {
        /// Line of the error in the whole input.
        line: u64,
        /// Which document (`.ips header`, `.ips body`, `log entry`).
        what: &'static str,
        /// serde_json's message without its position.
        message: String,
    },
    /// The input has the right shape but is missing something essential or is truncated.
    #[error("{message}")]
    Malformed {
        /// Line where the problem was found.
        line: u64,
        /// What is wrong.
        message: String,
    },
    /// The input was forced to a format (`--format`) it does not have.
    #[error("not a {format} report: {hint}")]
    WrongFormat {
        /// Line the parser looked at.
        line: u64,
        /// The forced format.
        format: &'static str,
        /// What was seen instead.
        hint: String,
    },
    /// A well-formed input of a kind crashlog does not model (e.g. a Jetsam `.ips`).
    #[error("unsupported report: {what}")]
    Unsupported {
        /// Line the parser looked at.
        line: u64,
        /// What it is.
        what: String,
    },
    /// A limit that protects against hostile input was hit.
    #[error("{what} exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Line where the limit was hit.
        line: u64,
        /// What was too large.
        what: &'static str,
        /// The limit.
        limit: u64,
    },
    /// Reading the input failed.
    #[error("read error: {source}")]
    Io {
        /// Line being read.
        line: u64,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl ParseError {
    /// A stable identifier for logs and JSON (`"invalid_json"`, `"malformed"`…).
    pub fn name(&self) -> &'static str {
        match self {
            ParseError::Empty => "empty",
            ParseError::Unrecognized { .. } => "unrecognized",
            ParseError::Json { .. } => "invalid_json",
            ParseError::Malformed { .. } => "malformed",
            ParseError::WrongFormat { .. } => "wrong_format",
            ParseError::Unsupported { .. } => "unsupported",
            ParseError::TooLarge { .. } => "too_large",
            ParseError::Io { .. } => "io",
        }
    }

    /// The 1-based input line, when known.
    pub fn line(&self) -> Option<u64> {
        let line = match self {
            ParseError::Empty => 0,
            ParseError::Unrecognized { line, .. }
            | ParseError::Json { line, .. }
            | ParseError::Malformed { line, .. }
            | ParseError::WrongFormat { line, .. }
            | ParseError::Unsupported { line, .. }
            | ParseError::TooLarge { line, .. }
            | ParseError::Io { line, .. } => *line,
        };
        (line > 0).then_some(line)
    }

    /// Shift the line number by `lines` (for a document that starts further down a file).
    pub fn offset_lines(mut self, lines: u64) -> ParseError {
        match &mut self {
            ParseError::Empty => {}
            ParseError::Unrecognized { line, .. }
            | ParseError::Json { line, .. }
            | ParseError::Malformed { line, .. }
            | ParseError::WrongFormat { line, .. }
            | ParseError::Unsupported { line, .. }
            | ParseError::TooLarge { line, .. }
            | ParseError::Io { line, .. } => *line = line.saturating_add(lines),
        }
        self
    }

    pub(crate) fn json(what: &'static str, first_line: u64, e: &serde_json::Error) -> ParseError {
        // serde_json's Display appends " at line L column C"; keep only the message.
        let full = e.to_string();
        let message = match full.rfind(" at line ") {
            Some(i) => full[..i].to_string(),
            None => full,
        };
        let line = first_line + (e.line() as u64).saturating_sub(1);
        ParseError::Json {
            line: line.max(1),
            what,
            message,
        }
    }
}

/// A file or directory that could not be read or parsed.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be opened or read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A non-log file is larger than the configured cap.
    #[error("{}: file is {size} bytes, over the {limit}-byte limit for reports (logs are streamed; pass --format log for a log)", path.display())]
    TooLarge {
        /// The path.
        path: PathBuf,
        /// File size.
        size: u64,
        /// The cap.
        limit: u64,
    },
    /// The content did not parse.
    #[error("{}:{}{source}", path.display(), line_prefix(source))]
    Parse {
        /// The path.
        path: PathBuf,
        /// The parse error (with its line).
        #[source]
        source: ParseError,
    },
}

fn line_prefix(e: &ParseError) -> String {
    match e.line() {
        Some(l) => format!("{l}: "),
        None => " ".to_string(),
    }
}

impl LoadError {
    /// A stable identifier (`"io"`, `"too_large"`, or the parse error's name).
    pub fn name(&self) -> &'static str {
        match self {
            LoadError::Io { .. } => "io",
            LoadError::TooLarge { .. } => "too_large",
            LoadError::Parse { source, .. } => source.name(),
        }
    }

    /// The path the error is about.
    pub fn path(&self) -> &std::path::Path {
        match self {
            LoadError::Io { path, .. }
            | LoadError::TooLarge { path, .. }
            | LoadError::Parse { path, .. } => path,
        }
    }

    /// The message without the path (and without the line for parse errors).
    pub fn message(&self) -> String {
        match self {
            LoadError::Io { source, .. } => source.to_string(),
            LoadError::TooLarge { size, limit, .. } => format!(
                "file is {size} bytes, over the {limit}-byte limit for reports (logs are streamed; pass --format log for a log)"
            ),
            LoadError::Parse { source, .. } => source.to_string(),
        }
    }

    /// The input line, for parse errors that know it.
    pub fn line(&self) -> Option<u64> {
        match self {
            LoadError::Parse { source, .. } => source.line(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_error_displays_path_line_message() {
        let e = LoadError::Parse {
            path: PathBuf::from("dir/bad.ips"),
            source: ParseError::Malformed {
                line: 7,
                message: "truncated".into(),
            },
        };
        assert_eq!(e.to_string(), "dir/bad.ips:7: truncated");
        assert_eq!(e.name(), "malformed");
        let e = LoadError::Parse {
            path: PathBuf::from("x"),
            source: ParseError::Empty,
        };
        assert_eq!(e.to_string(), "x: empty input");
    }
}
