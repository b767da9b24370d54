//! Download links: `/download/<token>`, where the token names the order,
//! the product and the expiry, signed with HMAC-SHA-256 under a key kept in
//! the order book. Verification is constant-time; a forged, altered or
//! expired token is refused with the reason.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, KeyInit as _, Mac as _};
use sha2::Sha256;

/// What a valid token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The paid order.
    pub order: String,
    /// The product whose file it downloads.
    pub product: String,
    /// Valid until, Unix ms.
    pub expires_ms: u64,
}

/// Why a token is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// Not a token of ours, or altered.
    #[error("the link is not valid")]
    Forged,
    /// Valid but too old.
    #[error("the link has expired")]
    Expired,
}

impl LinkError {
    /// The `result` label of `x0tta_payments_downloads_total`.
    pub fn label(self) -> &'static str {
        match self {
            LinkError::Forged => "forged",
            LinkError::Expired => "expired",
        }
    }
}

/// Signs and checks download tokens.
#[derive(Clone)]
pub struct Links {
    key: [u8; 32],
}

impl std::fmt::Debug for Links {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Links { key: <secret> }")
    }
}

impl Links {
    /// Links signed with `key`.
    pub fn new(key: [u8; 32]) -> Self {
        Self { key }
    }

    fn mac(&self) -> Hmac<Sha256> {
        Hmac::<Sha256>::new_from_slice(&self.key).unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"))
    }

    /// The token for `grant`.
    pub fn sign(&self, grant: &Grant) -> String {
        let payload = format!("{}:{}:{}", grant.order, grant.product, grant.expires_ms);
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        let tag = mac.finalize().into_bytes();
        format!("{}.{}", URL_SAFE_NO_PAD.encode(payload), URL_SAFE_NO_PAD.encode(tag))
    }

    /// What `token` grants at `now_ms`.
    pub fn verify(&self, token: &str, now_ms: u64) -> Result<Grant, LinkError> {
        let (payload, tag) = token.split_once('.').ok_or(LinkError::Forged)?;
        let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| LinkError::Forged)?;
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| LinkError::Forged)?;
        let mut mac = self.mac();
        mac.update(&payload);
        mac.verify_slice(&tag).map_err(|_| LinkError::Forged)?;
        let payload = String::from_utf8(payload).map_err(|_| LinkError::Forged)?;
        let mut parts = payload.splitn(3, ':');
        let (Some(order), Some(product), Some(expires)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(LinkError::Forged);
        };
        let expires_ms: u64 = expires.parse().map_err(|_| LinkError::Forged)?;
        if now_ms > expires_ms {
            return Err(LinkError::Expired);
        }
        Ok(Grant {
            order: order.into(),
            product: product.into(),
            expires_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant() -> Grant {
        Grant {
            order: "K7Q2M9TZ".into(),
            product: "node".into(),
            expires_ms: 1_000,
        }
    }

    #[test]
    fn a_signed_link_grants_until_it_expires() {
        let links = Links::new([7; 32]);
        let token = links.sign(&grant());
        assert_eq!(links.verify(&token, 1_000), Ok(grant()));
        assert_eq!(links.verify(&token, 1_001), Err(LinkError::Expired));
    }

    #[test]
    fn forged_and_altered_links_are_refused() {
        let links = Links::new([7; 32]);
        let token = links.sign(&grant());
        assert_eq!(Links::new([8; 32]).verify(&token, 0), Err(LinkError::Forged));
        let longer = Grant {
            expires_ms: 9_999_999,
            ..grant()
        };
        let (_, tag) = token.split_once('.').expect("dot");
        let (payload, _) = links
            .sign(&longer)
            .split_once('.')
            .map(|(p, t)| (p.to_string(), t.to_string()))
            .expect("dot");
        assert_eq!(links.verify(&format!("{payload}.{tag}"), 0), Err(LinkError::Forged));
        for junk in ["", ".", "abc", "a.b", "%%.%%", &token[..token.len() - 1]] {
            assert_eq!(links.verify(junk, 0), Err(LinkError::Forged), "{junk:?}");
        }
    }
}
