//! Errors from loading, attaching and using the XDP program.

use std::{error::Error as StdError, io};

/// Why XDP is not available or an operation on it failed.
#[derive(Debug, thiserror::Error)]
pub enum XdpError {
    /// The binary was built without the XDP object.
    #[error("{0}")]
    NotBuilt(String),
    /// No interface with that name in this network namespace.
    #[error("interface {0:?} does not exist")]
    NoSuchInterface(String),
    /// The interface exists but is administratively down.
    #[error("interface {0:?} is down")]
    InterfaceDown(String),
    /// The kernel refused for lack of privileges.
    #[error("not permitted to {action} (needs root or CAP_BPF + CAP_NET_ADMIN): {detail}")]
    PermissionDenied {
        /// What was being done.
        action: &'static str,
        /// The underlying error.
        detail: String,
    },
    /// Another XDP program is already attached to the interface.
    #[error("an XDP program is already attached to {0:?}; not attaching a second one")]
    AlreadyAttached(String),
    /// No requested mode could be used.
    #[error("interface {iface:?} accepts none of the requested XDP modes ({tried})")]
    NoMode {
        /// The interface.
        iface: String,
        /// Each mode tried, with the kernel's answer.
        tried: String,
    },
    /// Loading the object or the program into the kernel failed.
    #[error("loading the XDP program failed: {0}")]
    Load(String),
    /// A map could not be read or written.
    #[error("XDP map {map}: {detail}")]
    Map {
        /// The map name.
        map: &'static str,
        /// The underlying error.
        detail: String,
    },
    /// The blocklist has no room for another source.
    #[error("the XDP blocklist is full ({0} entries)")]
    BlocklistFull(u32),
}

impl XdpError {
    /// True when the condition may clear by itself (an interface that appears
    /// or comes up later), so attaching is worth retrying.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::NoSuchInterface(_) | Self::InterfaceDown(_))
    }

    /// A short stable label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NotBuilt(_) => "not_built",
            Self::NoSuchInterface(_) => "no_such_interface",
            Self::InterfaceDown(_) => "interface_down",
            Self::PermissionDenied { .. } => "permission_denied",
            Self::AlreadyAttached(_) => "already_attached",
            Self::NoMode { .. } => "no_mode",
            Self::Load(_) => "load",
            Self::Map { .. } => "map",
            Self::BlocklistFull(_) => "blocklist_full",
        }
    }
}

/// The first OS error code in an error's source chain.
pub(crate) fn os_error(error: &(dyn StdError + 'static)) -> Option<i32> {
    let mut current: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(e) = current {
        if let Some(code) = e.downcast_ref::<io::Error>().and_then(io::Error::raw_os_error) {
            return Some(code);
        }
        current = e.source();
    }
    None
}

/// The error and its sources, joined, for messages.
pub(crate) fn describe(error: &(dyn StdError + 'static)) -> String {
    let mut text = error.to_string();
    let mut current = error.source();
    while let Some(e) = current {
        let more = e.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        current = e.source();
    }
    text
}

/// Maps a failed load to [`XdpError::PermissionDenied`] when the kernel said EPERM.
pub(crate) fn load_error(error: &(dyn StdError + 'static)) -> XdpError {
    let detail = describe(error);
    match os_error(error) {
        Some(nix::libc::EPERM) | Some(nix::libc::EACCES) => XdpError::PermissionDenied {
            action: "load the XDP program",
            detail,
        },
        _ => XdpError::Load(detail),
    }
}
