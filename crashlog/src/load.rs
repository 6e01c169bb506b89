//! Files and directories → reports: recursive walk, parallel parsing (rayon), size caps,
//! and streaming for logs (a log file is never read whole).

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::error::{LoadError, ParseError};
use crate::model::Report;
use crate::parse::{self, Format, LogLimits, LogReader};

/// How files are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadOptions {
    /// Forced format, or [`Format::Auto`].
    pub format: Format,
    /// Largest non-log file read into memory (default 64 MiB). Logs are streamed.
    pub max_report_bytes: u64,
    /// Bytes read from the start of a file to decide whether it is a log (default 64 KiB).
    pub sniff_bytes: usize,
    /// Limits for streamed logs.
    pub log_limits: LogLimits,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            format: Format::Auto,
            max_report_bytes: 64 * 1024 * 1024,
            sniff_bytes: 64 * 1024,
            log_limits: LogLimits::default(),
        }
    }
}

/// Deepest directory nesting followed by [`collect_files`].
const MAX_DEPTH: usize = 64;

/// Expand paths: files are kept as given, directories are walked recursively (sorted,
/// hidden entries and symlinked directories skipped). Unreadable paths become errors.
pub fn collect_files(paths: &[PathBuf]) -> (Vec<PathBuf>, Vec<LoadError>) {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for p in paths {
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => walk(p, 0, &mut files, &mut errors),
            Ok(_) => files.push(p.clone()),
            Err(source) => errors.push(LoadError::Io {
                path: p.clone(),
                source,
            }),
        }
    }
    (files, errors)
}

fn walk(dir: &Path, depth: usize, files: &mut Vec<PathBuf>, errors: &mut Vec<LoadError>) {
    if depth > MAX_DEPTH {
        return;
    }
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(source) => {
            errors.push(LoadError::Io {
                path: dir.to_path_buf(),
                source,
            });
            return;
        }
    };
    let mut entries: Vec<_> = rd.filter_map(Result::ok).collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        if e.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let path = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => walk(&path, depth + 1, files, errors),
            Ok(t) if t.is_file() => files.push(path),
            // Follow links to files, never to directories (no cycles).
            Ok(t) if t.is_symlink() && std::fs::metadata(&path).is_ok_and(|m| m.is_file()) => {
                files.push(path);
            }
            _ => {}
        }
    }
}

/// Whether a file should be streamed as a log: forced with `--format log`, or detected
/// from its first [`LoadOptions::sniff_bytes`].
pub fn is_log_file(path: &Path, opts: &LoadOptions) -> Result<bool, LoadError> {
    match opts.format {
        Format::Log => return Ok(true),
        Format::Auto => {}
        _ => return Ok(false),
    }
    let io = |source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = File::open(path).map_err(io)?;
    let mut head = Vec::with_capacity(opts.sniff_bytes.min(1 << 20));
    f.by_ref()
        .take(opts.sniff_bytes as u64)
        .read_to_end(&mut head)
        .map_err(io)?;
    // Cut at the last newline so a partial line does not confuse detection.
    if head.len() == opts.sniff_bytes
        && let Some(nl) = memchr::memrchr(b'\n', &head)
    {
        head.truncate(nl + 1);
    }
    Ok(parse::detect(&head) == Format::Log)
}

/// Open a log file for streaming.
pub fn open_log(path: &Path, limits: LogLimits) -> Result<LogReader<BufReader<File>>, LoadError> {
    let f = File::open(path).map_err(|source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(LogReader::with_limits(
        BufReader::with_capacity(256 * 1024, f),
        limits,
    ))
}

/// Read a non-log file (size-capped) and parse it.
pub fn load_file(path: &Path, opts: &LoadOptions) -> Result<Vec<Report>, LoadError> {
    let io = |source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    };
    let f = File::open(path).map_err(io)?;
    let size = f.metadata().map_err(io)?.len();
    if size > opts.max_report_bytes {
        return Err(LoadError::TooLarge {
            path: path.to_path_buf(),
            size,
            limit: opts.max_report_bytes,
        });
    }
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0).min(1 << 26));
    f.take(opts.max_report_bytes + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > opts.max_report_bytes {
        return Err(LoadError::TooLarge {
            path: path.to_path_buf(),
            size: bytes.len() as u64,
            limit: opts.max_report_bytes,
        });
    }
    parse::parse(&bytes, opts.format).map_err(|source| LoadError::Parse {
        path: path.to_path_buf(),
        source,
    })
}

/// Parse a whole log file through the streaming reader into one report (memory grows
/// with the number of entries; use [`open_log`] to stay bounded).
pub fn load_log(path: &Path, opts: &LoadOptions) -> Result<Report, LoadError> {
    let reader = open_log(path, opts.log_limits)?;
    let mut r = Report::new(
        crate::model::ReportKind::Log,
        crate::model::SourceFormat::LogText,
    );
    let mut first_err: Option<ParseError> = None;
    for item in reader {
        match item {
            Ok(e) => r.log.push(e),
            Err(ParseError::Io { line, source }) => {
                return Err(LoadError::Parse {
                    path: path.to_path_buf(),
                    source: ParseError::Io { line, source },
                });
            }
            Err(e) => {
                r.warn(e.line(), e.to_string());
                first_err.get_or_insert(e);
            }
        }
    }
    if r.log.is_empty() {
        let source = first_err.unwrap_or(ParseError::WrongFormat {
            line: 1,
            format: "log",
            hint: "no log entries found".into(),
        });
        return Err(LoadError::Parse {
            path: path.to_path_buf(),
            source,
        });
    }
    Ok(r)
}

/// The outcome for one file.
#[derive(Debug)]
pub struct Loaded {
    /// The file.
    pub path: PathBuf,
    /// Its reports, or why it could not be read.
    pub result: Result<Vec<Report>, LoadError>,
}

/// Walk `paths` and parse every file in parallel, logs included (collected in memory).
/// Results keep the walk order; walk errors come first.
pub fn load_paths(paths: &[PathBuf], opts: &LoadOptions) -> Vec<Loaded> {
    let (files, errors) = collect_files(paths);
    let mut out: Vec<Loaded> = errors
        .into_iter()
        .map(|e| Loaded {
            path: e.path().to_path_buf(),
            result: Err(e),
        })
        .collect();
    out.par_extend(files.into_par_iter().map(|path| {
        let result = match is_log_file(&path, opts) {
            Ok(true) => load_log(&path, opts).map(|r| vec![r]),
            Ok(false) => load_file(&path, opts),
            Err(e) => Err(e),
        };
        Loaded { path, result }
    }));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walk_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("a/b");
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(
            sub.join("stack.txt"),
            "0 libfoo.dylib 0x1000 foo + 1\n1 libfoo.dylib 0x2000 bar + 2\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("junk.txt"), "hello there\n").unwrap();
        std::fs::write(dir.path().join(".hidden"), "x").unwrap();
        let res = load_paths(
            &[dir.path().to_path_buf(), dir.path().join("missing")],
            &LoadOptions::default(),
        );
        assert_eq!(res.len(), 3);
        assert!(matches!(res[0].result, Err(LoadError::Io { .. })));
        assert!(
            res.iter()
                .any(|l| l.path.ends_with("stack.txt") && l.result.is_ok())
        );
        let junk = res.iter().find(|l| l.path.ends_with("junk.txt")).unwrap();
        let msg = junk.result.as_ref().unwrap_err().to_string();
        assert!(msg.ends_with("junk.txt:1: unrecognized input: no known report or log format (first line: \"hello there\")"), "{msg}");
    }

    #[test]
    fn size_cap() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big.crash");
        std::fs::write(&p, vec![b'x'; 2000]).unwrap();
        let opts = LoadOptions {
            max_report_bytes: 1000,
            format: Format::Crash,
            ..LoadOptions::default()
        };
        assert!(matches!(
            load_file(&p, &opts),
            Err(LoadError::TooLarge { size: 2000, .. })
        ));
    }
}
