//! Stateless cookies (as WireGuard and Rosenpass use them): under handshake
//! load a responder answers an initiation without a valid cookie with a cookie
//! and no other work; only an initiator that can receive at its address (or
//! route) and echo the cookie gets the expensive ML-KEM and ML-DSA work done.
//!
//! A cookie is HMAC-SHA256 over the initiator's peer id and ephemeral key
//! under a secret that rotates; the previous secret is still accepted, so a
//! cookie stays valid for one to two rotation periods. Compared in constant time.

use std::time::{Duration, Instant};

use hmac::{KeyInit as _, Mac as _};
use subtle::ConstantTimeEq as _;

/// Cookie length.
pub const COOKIE_LEN: usize = 16;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// The responder's cookie secrets.
pub struct CookieJar {
    current: [u8; 32],
    previous: [u8; 32],
    rotated_at: Instant,
    rotate_every: Duration,
}

impl CookieJar {
    /// Fresh secrets, rotated every `rotate_every`.
    pub fn new(now: Instant, rotate_every: Duration) -> Self {
        Self {
            current: random_secret(),
            previous: random_secret(),
            rotated_at: now,
            rotate_every,
        }
    }

    fn rotate_if_due(&mut self, now: Instant) {
        if now.duration_since(self.rotated_at) >= self.rotate_every {
            self.previous = self.current;
            self.current = random_secret();
            self.rotated_at = now;
        }
    }

    /// The cookie for an initiator (`who`: its peer id and ephemeral key).
    pub fn issue(&mut self, who: &[u8], now: Instant) -> [u8; COOKIE_LEN] {
        self.rotate_if_due(now);
        mac(&self.current, who)
    }

    /// Whether `cookie` was issued to `who` under the current or previous secret.
    pub fn check(&mut self, who: &[u8], cookie: &[u8], now: Instant) -> bool {
        self.rotate_if_due(now);
        let current = mac(&self.current, who).ct_eq(cookie);
        let previous = mac(&self.previous, who).ct_eq(cookie);
        bool::from(current | previous)
    }
}

fn mac(secret: &[u8; 32], who: &[u8]) -> [u8; COOKIE_LEN] {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(who);
    let full = mac.finalize().into_bytes();
    let mut cookie = [0u8; COOKIE_LEN];
    cookie.copy_from_slice(&full[..COOKIE_LEN]);
    cookie
}

fn random_secret() -> [u8; 32] {
    use rand::RngCore;
    let mut secret = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    secret
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cookie_holds_for_its_initiator_across_one_rotation_only() {
        let t = Instant::now();
        let every = Duration::from_secs(120);
        let mut jar = CookieJar::new(t, every);
        let cookie = jar.issue(b"peer-a|e", t);
        assert!(jar.check(b"peer-a|e", &cookie, t));
        assert!(!jar.check(b"peer-b|e", &cookie, t), "bound to the initiator");
        let mut forged = cookie;
        forged[0] ^= 1;
        assert!(!jar.check(b"peer-a|e", &forged, t));
        assert!(!jar.check(b"peer-a|e", &cookie[..8], t), "short cookies never match");
        assert!(
            jar.check(b"peer-a|e", &cookie, t + every),
            "previous secret still accepted"
        );
        assert!(
            !jar.check(b"peer-a|e", &cookie, t + every * 2),
            "two rotations later it is gone"
        );
    }
}
