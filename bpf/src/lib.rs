//! The x0tta6bl4 XDP program and its userspace side.
//!
//! `c/x0tta_xdp.bpf.c` counts every packet on an interface by class, keeps
//! per-source counts (top talkers) and drops packets from quarantined sources.
//! `build.rs` compiles it with clang; this crate embeds the object and uses aya
//! to load it, attach it in the best mode the interface supports, read its maps
//! and edit the blocklist. Dropping an [`Attachment`] detaches the program: the
//! kernel holds it through a BPF link owned by this process, so even a killed
//! node leaves nothing attached.

mod attach;
mod error;
mod interface;
mod maps;
mod object;

pub use attach::{monotonic_ns, Attachment, ModeRefusal, XdpMode, XdpModeRequest};
pub use error::XdpError;
pub use interface::check_interface;
pub use maps::{BlockEntry, Class, Counter, DropReason, Talker, XdpCounters, BLOCKLIST_CAPACITY};
pub use object::build_status;
