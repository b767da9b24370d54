//! X-Wing (draft-connolly-cfrg-xwing-kem-06: ML-KEM-768 and X25519 combined
//! with SHA3-256), the only KEM of the handshake, from `libcrux-kem` (the same
//! libcrux ML-KEM the node measured fastest, with HACL*'s verified X25519).
//! Its secret keys are kept expanded, so a decapsulation does not derive the
//! key again from its seed. The tests check it against RustCrypto's `x-wing`.

use std::cell::Cell;

use libcrux_kem::XWing;
use libcrux_traits::kem::arrayref::Kem as _;
use zeroize::Zeroizing;

use crate::identity::random;
use crate::Reject;

/// Bytes of an X-Wing public (encapsulation) key.
pub const PUBLIC_LEN: usize = 1216;
/// Bytes of an X-Wing ciphertext.
pub const CIPHERTEXT_LEN: usize = 1120;
/// Bytes of an expanded X-Wing secret key (ML-KEM-768's, then X25519's).
const SECRET_LEN: usize = 2432;
/// Bytes of the ML-KEM-768 part of a public key (the X25519 key follows).
const ML_KEM_PUBLIC_LEN: usize = 1184;

/// A shared secret.
pub(crate) type SharedSecret = Zeroizing<[u8; 32]>;

thread_local! {
    static OPERATIONS: Cell<u64> = const { Cell::new(0) };
}

/// X-Wing key generations, encapsulations and decapsulations done on this
/// thread so far (handshakes run on the caller's thread, so a test can tell
/// whether a message cost any KEM work).
pub fn operations_on_this_thread() -> u64 {
    OPERATIONS.with(Cell::get)
}

fn count() {
    OPERATIONS.with(|n| n.set(n.get() + 1));
}

/// An X-Wing secret key, wiped when dropped.
pub(crate) struct XWingSecret(Box<Zeroizing<[u8; SECRET_LEN]>>);

impl XWingSecret {
    /// The key pair of a 32-byte seed (the draft's key derivation).
    pub(crate) fn from_seed(seed: &[u8; 32]) -> (Self, Box<[u8; PUBLIC_LEN]>) {
        count();
        let mut secret = Box::new(Zeroizing::new([0u8; SECRET_LEN]));
        let mut public = Box::new([0u8; PUBLIC_LEN]);
        // X-Wing key generation fails only on bad randomness, and any 32
        // bytes are a valid seed.
        let _ = XWing::keygen(&mut public, &mut secret, seed);
        (Self(secret), public)
    }

    /// A fresh ephemeral key pair.
    pub(crate) fn generate() -> (Self, Box<[u8; PUBLIC_LEN]>) {
        Self::from_seed(&Zeroizing::new(random::<32>()))
    }

    /// The shared secret in `ciphertext` (any well-sized ciphertext gives
    /// one: ML-KEM rejects implicitly; only the key confirmation tells).
    pub(crate) fn decapsulate(&self, ciphertext: &[u8]) -> Result<SharedSecret, Reject> {
        let ciphertext: &[u8; CIPHERTEXT_LEN] = ciphertext
            .try_into()
            .map_err(|_| Reject::Malformed("X-Wing ciphertext"))?;
        count();
        let mut shared = Zeroizing::new([0u8; 32]);
        XWing::decaps(&mut shared, ciphertext, &self.0).map_err(|_| Reject::Malformed("X-Wing ciphertext"))?;
        Ok(shared)
    }
}

/// A new shared secret for the holder of `public`, and its ciphertext.
pub(crate) fn encapsulate(public: &[u8; PUBLIC_LEN]) -> Result<(Box<[u8; CIPHERTEXT_LEN]>, SharedSecret), Reject> {
    count();
    let randomness = Zeroizing::new(random::<64>());
    let mut ciphertext = Box::new([0u8; CIPHERTEXT_LEN]);
    let mut shared = Zeroizing::new([0u8; 32]);
    XWing::encaps(&mut ciphertext, &mut shared, public, &randomness).map_err(|_| Reject::Malformed("X-Wing key"))?;
    Ok((ciphertext, shared))
}

/// `bytes` as an X-Wing public key, if it is one: the right length and an
/// ML-KEM-768 part that passes FIPS 203's modulus check.
pub(crate) fn public_key(bytes: &[u8]) -> Option<Box<[u8; PUBLIC_LEN]>> {
    let key: [u8; PUBLIC_LEN] = bytes.try_into().ok()?;
    let ml_kem = libcrux_ml_kem::mlkem768::MlKem768PublicKey::try_from(&key[..ML_KEM_PUBLIC_LEN]).ok()?;
    libcrux_ml_kem::mlkem768::validate_public_key(&ml_kem).then(|| Box::new(key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use x_wing::{Decapsulate as _, Decapsulator as _, KeyExport as _};

    #[test]
    fn agrees_with_rustcrypto_x_wing_on_keys_ciphertexts_and_secrets() {
        for round in 0..4u8 {
            let seed = [round.wrapping_mul(37).wrapping_add(1); 32];
            let (ours, our_public) = XWingSecret::from_seed(&seed);
            let theirs = x_wing::DecapsulationKey::from(seed);
            let their_public = theirs.encapsulation_key().clone();
            assert_eq!(
                &our_public[..],
                &their_public.to_bytes()[..],
                "same key from the same seed"
            );

            let randomness = [round ^ 0x5a; 64];
            let (their_ct, their_ss) = their_public.encapsulate_deterministic(&randomness.into());
            let mut our_ct = [0u8; CIPHERTEXT_LEN];
            let mut our_ss = [0u8; 32];
            XWing::encaps(&mut our_ct, &mut our_ss, &our_public, &randomness).expect("encapsulates");
            assert_eq!(&our_ct[..], &their_ct[..], "same ciphertext from the same randomness");
            assert_eq!(&our_ss[..], &their_ss[..], "same shared secret");
            assert_eq!(&ours.decapsulate(&their_ct).expect("decapsulates")[..], &their_ss[..]);
            let (ct, ss) = encapsulate(&our_public).expect("encapsulates");
            assert_eq!(&theirs.decapsulate(&(*ct).into())[..], &ss[..], "theirs opens ours");
        }
    }

    #[test]
    fn public_keys_are_checked_and_work_is_counted() {
        let before = operations_on_this_thread();
        let (secret, public) = XWingSecret::generate();
        assert!(public_key(&public[..]).is_some());
        assert!(public_key(&public[..100]).is_none(), "short");
        let mut bad = *public;
        bad[..2].copy_from_slice(&[0xff, 0xff]); // a coefficient above the modulus
        assert!(public_key(&bad).is_none(), "fails the modulus check");
        let (ct, ss) = encapsulate(&public).expect("encapsulates");
        assert_eq!(secret.decapsulate(&ct[..]).expect("decapsulates"), ss);
        assert!(secret.decapsulate(&ct[1..]).is_err());
        assert_eq!(operations_on_this_thread() - before, 3);
    }
}
