//! The XDP object embedded at build time.

/// The compiled program; empty when the build had no clang.
static OBJECT: &[u8] = aya::include_bytes_aligned!(env!("X0TTA_XDP_OBJECT"));

/// The embedded object, or why there is none.
pub(crate) fn object() -> Result<&'static [u8], String> {
    if OBJECT.is_empty() {
        Err(format!("XDP program not built: {}", build_status()))
    } else {
        Ok(OBJECT)
    }
}

/// How the build went: `built`, or the reason the XDP object is missing.
pub fn build_status() -> &'static str {
    env!("X0TTA_XDP_BUILD_STATUS")
}
