//! The crate's error type.

use thiserror::Error;

/// Everything a flow-table operation can refuse with. Each variant maps to the errno the
/// kernel returns in the same situation ([`FlowError::errno`]) and has a stable
/// [`FlowError::name`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FlowError {
    /// `flow_req2key` produced a mask that is not one of the seven (`ENOTSUP`).
    #[error("unknown flow key mask 0x{0:04x}")]
    UnknownMask(u16),
    /// A conflicting entry exists (`EEXIST`).
    #[error("entry \"{0}\" already exists")]
    Exists(String),
    /// A child flow named a parent that does not exist (`ENOENT`).
    #[error("parent entry \"{0}\" does not exist")]
    NoParent(String),
    /// The owner is at its flow limit and the open did not block (`ENOMEM`, POSIX 12).
    #[error("flow limit {limit} reached for {process}[{pid}]: Cannot allocate memory")]
    OwnerLimit {
        /// Owner process name.
        process: String,
        /// Owner pid.
        pid: u32,
        /// The limit.
        limit: usize,
    },
    /// The owner's descriptor table is full (`EMFILE`, errno 24).
    #[error("Too many open files")]
    TooManyOpenFiles,
    /// A descriptor that is not open (`EBADF`).
    #[error("Bad file descriptor")]
    BadDescriptor,
    /// No such flow or owner (`ENOENT`).
    #[error("no such flow or owner")]
    NotFound,
    /// The owner bucket is dead (`ENXIO`).
    #[error("binding aborted (lost race)")]
    LostRace,
    /// The flow table could not grow further (`ENOMEM`).
    #[error("flow table add failed (err 12)")]
    TableFull,
    /// An os_refcnt check failed (the kernel would panic with this message).
    #[error("{0}")]
    Refcnt(#[from] crate::refcnt::RefcntError),
    /// The allocator caught misuse (the kernel would panic with this message).
    #[error("{0}")]
    Allocator(String),
    /// A flow divert operation failed.
    #[error("{0}")]
    Divert(#[from] crate::divert::DivertError),
}

impl FlowError {
    /// A stable identifier for logs and tests.
    pub fn name(&self) -> &'static str {
        match self {
            FlowError::UnknownMask(_) => "unknown-mask",
            FlowError::Exists(_) => "exists",
            FlowError::NoParent(_) => "no-parent",
            FlowError::OwnerLimit { .. } => "owner-limit",
            FlowError::TooManyOpenFiles => "emfile",
            FlowError::BadDescriptor => "ebadf",
            FlowError::NotFound => "not-found",
            FlowError::LostRace => "lost-race",
            FlowError::TableFull => "table-full",
            FlowError::Refcnt(_) => "refcnt",
            FlowError::Allocator(_) => "allocator",
            FlowError::Divert(_) => "divert",
        }
    }

    /// The errno the kernel would return.
    pub fn errno(&self) -> i32 {
        match self {
            FlowError::UnknownMask(_) => 45, // ENOTSUP
            FlowError::Exists(_) => 17,      // EEXIST
            FlowError::NoParent(_) | FlowError::NotFound => 2,
            FlowError::OwnerLimit { .. } | FlowError::TableFull => 12,
            FlowError::TooManyOpenFiles => 24,
            FlowError::BadDescriptor => 9,
            FlowError::LostRace => 6, // ENXIO
            FlowError::Refcnt(_) | FlowError::Allocator(_) => 14,
            FlowError::Divert(e) => e.errno(),
        }
    }

    /// True when the kernel would have panicked instead of returning an error.
    pub fn is_panic(&self) -> bool {
        matches!(self, FlowError::Refcnt(_) | FlowError::Allocator(_))
    }
}
