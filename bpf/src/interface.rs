//! Interface checks before attaching.

use nix::{ifaddrs::getifaddrs, net::if_::InterfaceFlags};

use crate::XdpError;

/// Checks that `name` exists in this network namespace and is up; returns its index.
pub fn check_interface(name: &str) -> Result<u32, XdpError> {
    let index = nix::net::if_::if_nametoindex(name).map_err(|_| XdpError::NoSuchInterface(name.to_string()))?;
    let up = getifaddrs()
        .map_err(|e| XdpError::Load(format!("listing interfaces: {e}")))?
        .any(|entry| entry.interface_name == name && entry.flags.contains(InterfaceFlags::IFF_UP));
    if up {
        Ok(index)
    } else {
        Err(XdpError::InterfaceDown(name.to_string()))
    }
}
