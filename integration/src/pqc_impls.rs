//! The well-kept ML-KEM-768 and ML-DSA-65 implementations behind one interface,
//! so `bench pqc` measures them side by side in one run and the vector tests
//! (`tests/pqc_impls.rs`) check each against the same known answers.
//!
//! Keys are held in each implementation's own types; byte encodings (FIPS 203
//! and FIPS 204) only at the edges.

use std::time::{Duration, Instant};

use serde::Serialize;

/// An ML-KEM-768 implementation.
pub trait Kem768 {
    /// Name in tables.
    const NAME: &'static str;
    /// Decapsulation key.
    type Dk;
    /// Encapsulation key.
    type Ek;
    /// Ciphertext.
    type Ct;
    /// A key pair; from `seed` (d ‖ z) where the implementation can.
    fn keygen(seed: &[u8; 64]) -> (Self::Dk, Self::Ek);
    /// A ciphertext and shared secret for `ek`; from `m` where the implementation can.
    fn encapsulate(ek: &Self::Ek, m: &[u8; 32]) -> (Self::Ct, [u8; 32]);
    /// The shared secret in `ct`.
    fn decapsulate(dk: &Self::Dk, ct: &Self::Ct) -> [u8; 32];
}

/// An ML-DSA-65 implementation (pure ML-DSA, empty context).
pub trait Dsa65 {
    /// Name in tables.
    const NAME: &'static str;
    /// Signing key (expanded once, as a node keeps it).
    type Sk;
    /// Verifying key.
    type Vk;
    /// A key pair from the seed ξ.
    fn keygen(seed: &[u8; 32]) -> (Self::Sk, Self::Vk);
    /// A signature of `msg`.
    fn sign(sk: &Self::Sk, msg: &[u8]) -> Vec<u8>;
    /// Whether `sig` is a valid signature of `msg`.
    fn verify(vk: &Self::Vk, msg: &[u8], sig: &[u8]) -> bool;
}

/// RustCrypto `ml-kem` (what the node uses today).
pub struct RustCrypto;
/// Cryspen `libcrux-ml-kem` / `libcrux-ml-dsa` (formally verified parts; AVX2 picked at run time).
pub struct Libcrux;
/// `aws-lc-rs` (AWS-LC, C and assembly; FIPS-validated module).
pub struct AwsLc;

impl Kem768 for RustCrypto {
    const NAME: &'static str = "RustCrypto ml-kem 0.3";
    type Dk = ml_kem::DecapsulationKey768;
    type Ek = ml_kem::EncapsulationKey768;
    type Ct = ml_kem::Ciphertext<ml_kem::MlKem768>;

    fn keygen(seed: &[u8; 64]) -> (Self::Dk, Self::Ek) {
        let dk = ml_kem::DecapsulationKey768::from_seed((*seed).into());
        let ek = dk.encapsulation_key().clone();
        (dk, ek)
    }

    fn encapsulate(ek: &Self::Ek, m: &[u8; 32]) -> (Self::Ct, [u8; 32]) {
        let (ct, ss) = ek.encapsulate_deterministic(&(*m).into());
        (ct, ss.into())
    }

    fn decapsulate(dk: &Self::Dk, ct: &Self::Ct) -> [u8; 32] {
        use ml_kem::Decapsulate as _;
        dk.decapsulate(ct).into()
    }
}

impl Kem768 for Libcrux {
    const NAME: &'static str = "libcrux-ml-kem 0.0.11";
    type Dk = libcrux_ml_kem::mlkem768::MlKem768PrivateKey;
    type Ek = libcrux_ml_kem::mlkem768::MlKem768PublicKey;
    type Ct = libcrux_ml_kem::mlkem768::MlKem768Ciphertext;

    fn keygen(seed: &[u8; 64]) -> (Self::Dk, Self::Ek) {
        libcrux_ml_kem::mlkem768::generate_key_pair(*seed).into_parts()
    }

    fn encapsulate(ek: &Self::Ek, m: &[u8; 32]) -> (Self::Ct, [u8; 32]) {
        libcrux_ml_kem::mlkem768::encapsulate(ek, *m)
    }

    fn decapsulate(dk: &Self::Dk, ct: &Self::Ct) -> [u8; 32] {
        libcrux_ml_kem::mlkem768::decapsulate(dk, ct)
    }
}

impl Kem768 for AwsLc {
    const NAME: &'static str = "aws-lc-rs 1.19";
    type Dk = aws_lc_rs::kem::DecapsulationKey<aws_lc_rs::kem::AlgorithmId>;
    type Ek = aws_lc_rs::kem::EncapsulationKey<aws_lc_rs::kem::AlgorithmId>;
    type Ct = Vec<u8>;

    /// Random keys: AWS-LC's Rust API has no seeded key generation.
    fn keygen(_seed: &[u8; 64]) -> (Self::Dk, Self::Ek) {
        let dk = aws_lc_rs::kem::DecapsulationKey::generate(&aws_lc_rs::kem::ML_KEM_768).expect("ML-KEM-768 keygen");
        let ek = dk.encapsulation_key().expect("encapsulation key");
        (dk, ek)
    }

    /// Random `m`: AWS-LC's Rust API has no seeded encapsulation.
    fn encapsulate(ek: &Self::Ek, _m: &[u8; 32]) -> (Self::Ct, [u8; 32]) {
        let (ct, ss) = ek.encapsulate().expect("encapsulate");
        (ct.as_ref().to_vec(), shared(ss.as_ref()))
    }

    fn decapsulate(dk: &Self::Dk, ct: &Self::Ct) -> [u8; 32] {
        let ss = dk
            .decapsulate(aws_lc_rs::kem::Ciphertext::from(ct.as_slice()))
            .expect("decapsulate");
        shared(ss.as_ref())
    }
}

fn shared(bytes: &[u8]) -> [u8; 32] {
    <[u8; 32]>::try_from(bytes).expect("ML-KEM shared secrets are 32 bytes")
}

impl Dsa65 for RustCrypto {
    const NAME: &'static str = "RustCrypto ml-dsa 0.1";
    type Sk = ml_dsa::ExpandedSigningKey<ml_dsa::MlDsa65>;
    type Vk = ml_dsa::VerifyingKey<ml_dsa::MlDsa65>;

    fn keygen(seed: &[u8; 32]) -> (Self::Sk, Self::Vk) {
        let sk = ml_dsa::ExpandedSigningKey::<ml_dsa::MlDsa65>::from_seed(&(*seed).into());
        let vk = sk.verifying_key();
        (sk, vk)
    }

    fn sign(sk: &Self::Sk, msg: &[u8]) -> Vec<u8> {
        sk.sign_deterministic(msg, &[]).expect("ML-DSA sign").encode().to_vec()
    }

    fn verify(vk: &Self::Vk, msg: &[u8], sig: &[u8]) -> bool {
        ml_dsa::Signature::<ml_dsa::MlDsa65>::try_from(sig).is_ok_and(|sig| vk.verify_with_context(msg, &[], &sig))
    }
}

impl Dsa65 for Libcrux {
    const NAME: &'static str = "libcrux-ml-dsa 0.0.11";
    type Sk = libcrux_ml_dsa::ml_dsa_65::MLDSA65SigningKey;
    type Vk = libcrux_ml_dsa::ml_dsa_65::MLDSA65VerificationKey;

    fn keygen(seed: &[u8; 32]) -> (Self::Sk, Self::Vk) {
        let pair = libcrux_ml_dsa::ml_dsa_65::generate_key_pair(*seed);
        (pair.signing_key, pair.verification_key)
    }

    /// Deterministic signing (randomness all zero), like the node's.
    fn sign(sk: &Self::Sk, msg: &[u8]) -> Vec<u8> {
        libcrux_ml_dsa::ml_dsa_65::sign(sk, msg, &[], [0; 32])
            .expect("ML-DSA sign")
            .as_slice()
            .to_vec()
    }

    fn verify(vk: &Self::Vk, msg: &[u8], sig: &[u8]) -> bool {
        let Ok(sig) = <[u8; 3309]>::try_from(sig) else {
            return false;
        };
        libcrux_ml_dsa::ml_dsa_65::verify(vk, msg, &[], &libcrux_ml_dsa::ml_dsa_65::MLDSA65Signature::new(sig)).is_ok()
    }
}

impl Dsa65 for AwsLc {
    const NAME: &'static str = "aws-lc-rs 1.19";
    type Sk = aws_lc_rs::signature::PqdsaKeyPair;
    type Vk = Vec<u8>;

    fn keygen(seed: &[u8; 32]) -> (Self::Sk, Self::Vk) {
        use aws_lc_rs::signature::KeyPair as _;
        let pair = aws_lc_rs::signature::PqdsaKeyPair::from_seed(&aws_lc_rs::signature::ML_DSA_65_SIGNING, seed)
            .expect("ML-DSA-65 keygen");
        let vk = pair.public_key().as_ref().to_vec();
        (pair, vk)
    }

    /// Hedged (randomized) signing: AWS-LC's Rust API has no deterministic mode.
    fn sign(sk: &Self::Sk, msg: &[u8]) -> Vec<u8> {
        let mut sig = vec![0; aws_lc_rs::signature::ML_DSA_65_SIGNING.signature_len()];
        sk.sign(msg, &mut sig).expect("ML-DSA sign");
        sig
    }

    fn verify(vk: &Self::Vk, msg: &[u8], sig: &[u8]) -> bool {
        aws_lc_rs::signature::UnparsedPublicKey::new(&aws_lc_rs::signature::ML_DSA_65, vk)
            .verify(msg, sig)
            .is_ok()
    }
}

/// Operations per second of one implementation's primitives, on one thread.
#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    /// Implementation.
    pub implementation: &'static str,
    /// Primitive: `ML-KEM-768` or `ML-DSA-65`.
    pub primitive: &'static str,
    /// Key generations per second.
    pub keygen_per_sec: f64,
    /// Encapsulations (KEM) or signatures (DSA) per second.
    pub encaps_or_sign_per_sec: f64,
    /// Decapsulations (KEM) or verifications (DSA) per second.
    pub decaps_or_verify_per_sec: f64,
}

/// How often `op` runs per second, over at least `time`.
pub fn rate<T>(time: Duration, mut op: impl FnMut() -> T) -> f64 {
    let started = Instant::now();
    let mut count = 0u64;
    while started.elapsed() < time {
        std::hint::black_box(op());
        count += 1;
    }
    count as f64 / started.elapsed().as_secs_f64()
}

/// Measures `K` for `time` per operation.
pub fn measure_kem<K: Kem768>(time: Duration) -> Figures {
    let (seed, m) = ([7u8; 64], [9u8; 32]);
    let keygen = rate(time, || K::keygen(&seed));
    let (dk, ek) = K::keygen(&seed);
    let encaps = rate(time, || K::encapsulate(&ek, &m));
    let (ct, ss) = K::encapsulate(&ek, &m);
    assert_eq!(K::decapsulate(&dk, &ct), ss, "{} round trip", K::NAME);
    let decaps = rate(time, || K::decapsulate(&dk, &ct));
    Figures {
        implementation: K::NAME,
        primitive: "ML-KEM-768",
        keygen_per_sec: keygen,
        encaps_or_sign_per_sec: encaps,
        decaps_or_verify_per_sec: decaps,
    }
}

/// Measures `D` for `time` per operation (signing a 200-byte message, about a
/// handshake transcript).
pub fn measure_dsa<D: Dsa65>(time: Duration) -> Figures {
    let (seed, msg) = ([5u8; 32], [3u8; 200]);
    let keygen = rate(time, || D::keygen(&seed));
    let (sk, vk) = D::keygen(&seed);
    let sign = rate(time, || D::sign(&sk, &msg));
    let sig = D::sign(&sk, &msg);
    assert!(D::verify(&vk, &msg, &sig), "{} round trip", D::NAME);
    let verify = rate(time, || D::verify(&vk, &msg, &sig));
    Figures {
        implementation: D::NAME,
        primitive: "ML-DSA-65",
        keygen_per_sec: keygen,
        encaps_or_sign_per_sec: sign,
        decaps_or_verify_per_sec: verify,
    }
}
