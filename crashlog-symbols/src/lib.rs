//! crashlog-symbols: symbolication of report frames with `object`, `gimli` and `addr2line`.
