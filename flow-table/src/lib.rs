//! flow-table: a flowswitch-style flow table with switchable field bugs.
