//! crashlog: parse, sign, cluster and triage crash reports and logs.
