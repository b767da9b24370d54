//! The CA and the validator together: issued SVIDs validate, and every
//! refusal reason is reached by a certificate that breaks exactly that rule.

use std::time::{Duration, SystemTime};

use rcgen::{CertificateParams, ExtendedKeyUsagePurpose, Ia5String, IsCa, KeyPair, KeyUsagePurpose, SanType};

use super::ca::{pem_der, Revoked, TrustDomainCa};
use super::spiffe_id::SpiffeId;
use super::validate::{Refusal, Usage, Validator, MAX_CERT_BYTES};

const TD: &str = "mesh.test";
const HOUR: Duration = Duration::from_secs(3600);
const SKEW: Duration = Duration::from_secs(30);

fn ca() -> TrustDomainCa {
    TrustDomainCa::generate(TD, 24 * HOUR).expect("CA")
}

fn node(peer: &str) -> SpiffeId {
    SpiffeId::for_node(TD, peer).expect("id")
}

fn validator(ca: &TrustDomainCa) -> Validator {
    Validator::new(TD, ca.bundle_pem(), SKEW).expect("bundle")
}

/// Leaf parameters as the CA issues them; tests then break one rule.
fn leaf_params(uris: &[&str]) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.subject_alt_names = uris
        .iter()
        .map(|u| SanType::URI(Ia5String::try_from(*u).expect("ia5")))
        .collect();
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::minutes(1);
    params.not_after = now + time::Duration::hours(1);
    params
}

fn signed(ca: &TrustDomainCa, params: CertificateParams) -> Vec<u8> {
    let key = KeyPair::generate().expect("key");
    ca.sign(params, &key).expect("signed").der().to_vec()
}

#[test]
fn an_issued_svid_validates_for_client_and_server_use() {
    let ca = ca();
    let svid = ca.issue(&node("12D3KooWpeer"), HOUR).expect("issued");
    let validator = validator(&ca);
    for usage in [Usage::Client, Usage::Server] {
        let verified = validator
            .validate(std::slice::from_ref(&svid.cert_der), usage, SystemTime::now())
            .expect("valid");
        assert_eq!(verified.id, node("12D3KooWpeer"));
        assert_eq!(verified.id.node_peer_id(), Some("12D3KooWpeer"));
        assert_eq!(verified.serial, svid.serial);
    }
    assert_eq!(pem_der(&svid.cert_pem), Some(svid.cert_der.clone()));
}

#[test]
fn a_reloaded_ca_issues_svids_the_stored_bundle_trusts() {
    let first = ca();
    let reloaded = TrustDomainCa::from_pem(TD, &first.key_pem(), first.bundle_pem()).expect("reloads");
    let svid = reloaded.issue(&node("p"), HOUR).expect("issued");
    validator(&first)
        .validate(&[svid.cert_der], Usage::Client, SystemTime::now())
        .expect("the stored bundle trusts it");
    let other = ca();
    assert!(
        TrustDomainCa::from_pem(TD, &other.key_pem(), first.bundle_pem()).is_err(),
        "a foreign key"
    );
    assert!(
        TrustDomainCa::from_pem("other.td", &first.key_pem(), first.bundle_pem()).is_err(),
        "a foreign domain"
    );
    assert!(
        ca().issue(&SpiffeId::for_node("other.td", "p").expect("id"), HOUR)
            .is_err(),
        "another domain's ID"
    );
}

#[test]
fn validity_is_checked_with_the_skew_allowance() {
    let ca = ca();
    let v = validator(&ca);
    let svid = ca.issue(&node("p"), HOUR).expect("issued");
    let chain = [svid.cert_der.clone()];
    let end = svid.not_after;
    assert!(
        v.validate(&chain, Usage::Client, end + SKEW / 2).is_ok(),
        "within the skew"
    );
    assert_eq!(v.validate(&chain, Usage::Client, end + 2 * SKEW), Err(Refusal::Expired));
    // notBefore is backdated one minute.
    let start = end - HOUR - Duration::from_secs(60);
    assert!(
        v.validate(&chain, Usage::Client, start - SKEW / 2).is_ok(),
        "within the skew"
    );
    assert_eq!(
        v.validate(&chain, Usage::Client, start - 2 * SKEW),
        Err(Refusal::NotYetValid)
    );
}

#[test]
fn chains_to_other_cas_and_other_trust_domains_are_refused() {
    let ours = ca();
    let id = node("p").to_string();
    // A self-made CA: another name, or our CA's name with another key.
    let self_made = signed(
        &TrustDomainCa::generate("self.made", HOUR).expect("CA"),
        leaf_params(&[&id]),
    );
    let refused = validator(&ours).validate(&[self_made], Usage::Client, SystemTime::now());
    assert_eq!(refused, Err(Refusal::UnknownIssuer));
    let same_name = ca().issue(&node("p"), HOUR).expect("issued");
    let refused = validator(&ours).validate(&[same_name.cert_der], Usage::Client, SystemTime::now());
    assert_eq!(refused.map_err(|r| r.reason()), Err("bad_signature"));

    let foreign = TrustDomainCa::generate("other.td", HOUR).expect("CA");
    let svid = foreign
        .issue(&SpiffeId::for_node("other.td", "p").expect("id"), HOUR)
        .expect("issued");
    let refused = Validator::new(TD, foreign.bundle_pem(), SKEW)
        .expect("bundle")
        .validate(&[svid.cert_der], Usage::Client, SystemTime::now());
    assert_eq!(refused.map_err(|r| r.reason()), Err("wrong_trust_domain"));
}

#[test]
fn an_expired_bundle_is_named_as_such() {
    let ca = TrustDomainCa::generate(TD, Duration::from_secs(2)).expect("CA");
    let svid = ca.issue(&node("p"), HOUR).expect("issued");
    let later = SystemTime::now() + Duration::from_secs(600);
    assert_eq!(
        validator(&ca).validate(&[svid.cert_der], Usage::Client, later),
        Err(Refusal::BundleExpired)
    );
}

#[test]
fn revocation_follows_the_crl() {
    let ca = ca();
    let (kept, revoked) = (
        ca.issue(&node("a"), HOUR).expect("a"),
        ca.issue(&node("b"), HOUR).expect("b"),
    );
    let mut v = validator(&ca);
    let entry = Revoked {
        serial: revoked.serial.clone(),
        at_unix: 1,
    };
    v.set_crls(ca.crl_pem(&[entry], 1, HOUR).expect("crl").as_bytes())
        .expect("loads");
    let now = SystemTime::now();
    assert!(v
        .validate(std::slice::from_ref(&kept.cert_der), Usage::Client, now)
        .is_ok());
    assert_eq!(
        v.validate(&[revoked.cert_der], Usage::Client, now),
        Err(Refusal::Revoked)
    );
    // A CRL past its nextUpdate is not trusted to say anything.
    v.set_crls(ca.crl_pem(&[], 2, Duration::from_secs(1)).expect("crl").as_bytes())
        .expect("loads");
    let later = now + Duration::from_secs(120);
    assert_eq!(
        v.validate(std::slice::from_ref(&kept.cert_der), Usage::Client, later),
        Err(Refusal::CrlExpired)
    );
    // Another CA's CRL says nothing about ours.
    v.set_crls(
        TrustDomainCa::generate("other.td", HOUR)
            .expect("CA")
            .crl_pem(&[], 1, HOUR)
            .expect("crl")
            .as_bytes(),
    )
    .expect("loads");
    assert_eq!(
        v.validate(&[kept.cert_der], Usage::Client, now),
        Err(Refusal::RevocationUnknown)
    );
    assert!(v.set_crls(b"not a crl").is_err());
    let der = crate::svid::ca::pem_der(&ca.crl_pem(&[], 3, HOUR).expect("crl")).expect("DER");
    v.set_crls(&der).expect("a DER CRL, as distribution points serve them");
    assert!(
        v.set_crls(ca.bundle_pem().as_bytes()).is_err(),
        "a certificate is not a CRL"
    );
}

#[test]
fn a_pinned_id_presenting_another_key_is_refused() {
    use crate::svid::validate::{parse_pin, pin_of, Pins};
    let ca = ca();
    let (alice, bob) = (node("alice"), node("bob"));
    let first = ca.issue(&alice, HOUR).expect("SVID");
    let rekeyed = ca.issue(&alice, HOUR).expect("SVID with a new key");
    let pin = pin_of(&first.cert_der).expect("pin");
    assert!(pin.starts_with("sha256//"), "{pin}");
    let mut v = validator(&ca);
    v.set_pins(Pins::from([(alice.to_string(), parse_pin(&pin).expect("parses"))]));
    let now = SystemTime::now();
    assert!(v.validate(&[first.cert_der], Usage::Client, now).is_ok());
    assert_eq!(
        v.validate(&[rekeyed.cert_der], Usage::Client, now),
        Err(Refusal::PinMismatch(alice.to_string()))
    );
    let unpinned = ca.issue(&bob, HOUR).expect("SVID");
    assert!(
        v.validate(&[unpinned.cert_der], Usage::Client, now).is_ok(),
        "only pinned IDs are held to a key"
    );
    for bad in ["AAAA", "sha256//not base64!", "sha256//AAAA"] {
        assert!(parse_pin(bad).is_err(), "{bad}");
    }
}

#[test]
fn svids_breaking_a_spiffe_rule_are_refused_with_its_reason() {
    let ca = ca();
    let v = validator(&ca);
    let id = node("p").to_string();
    let mut two_uris = leaf_params(&[&id, "spiffe://mesh.test/node/q"]);
    two_uris.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let no_uri = leaf_params(&[]);
    let mut dns_only = leaf_params(&[]);
    dns_only.subject_alt_names = vec![SanType::DnsName("p.mesh.test".try_into().expect("dns"))];
    let bad_id = leaf_params(&["spiffe://mesh.test/node/../x"]);
    let mut ca_leaf = leaf_params(&[&id]);
    ca_leaf.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let mut no_ku = leaf_params(&[&id]);
    no_ku.key_usages = Vec::new();
    let mut no_digital = leaf_params(&[&id]);
    no_digital.key_usages = vec![KeyUsagePurpose::KeyAgreement];
    let mut cert_sign = leaf_params(&[&id]);
    cert_sign.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyCertSign];
    let mut server_only = leaf_params(&[&id]);
    server_only.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cases = [
        (two_uris, "uri_san_count"),
        (no_uri, "uri_san_count"),
        (dns_only, "uri_san_count"),
        (bad_id, "id_dot_segment"),
        (ca_leaf, "ca_as_leaf"),
        (no_ku, "key_usage"),
        (no_digital, "key_usage"),
        (cert_sign, "key_usage"),
        (server_only, "extended_key_usage"),
    ];
    for (params, reason) in cases {
        let refused = v.validate(&[signed(&ca, params)], Usage::Client, SystemTime::now());
        assert_eq!(refused.map_err(|r| r.reason()), Err(reason));
    }
    // The CA's own certificate is not an SVID.
    let ca_der = pem_der(ca.bundle_pem()).expect("der");
    assert_eq!(
        v.validate(&[ca_der], Usage::Client, SystemTime::now())
            .map_err(|r| r.reason()),
        Err("ca_as_leaf")
    );
}

#[test]
fn garbage_truncated_oversized_and_tampered_input_is_refused_without_panicking() {
    let ca = ca();
    let v = validator(&ca);
    let now = SystemTime::now();
    let good = ca.issue(&node("p"), HOUR).expect("issued").cert_der;
    let reason = |chain: &[Vec<u8>]| v.validate(chain, Usage::Client, now).map_err(|r| r.reason());
    assert_eq!(reason(&[]), Err("no_certificate"));
    assert_eq!(reason(&[b"garbage".to_vec()]), Err("malformed"));
    assert_eq!(reason(&[vec![0x30; MAX_CERT_BYTES + 1]]), Err("oversized"));
    assert_eq!(reason(&vec![good.clone(); 5]), Err("oversized"));
    let crl = pem_der(&ca.crl_pem(&[], 1, HOUR).expect("crl")).expect("der");
    assert_eq!(reason(&[crl]), Err("malformed"), "a CRL is not a certificate");
    let mut trailing = good.clone();
    trailing.push(0);
    assert_eq!(reason(&[trailing]), Err("malformed"));
    let mut tampered = good.clone();
    let last = tampered.len() - 3;
    tampered[last] ^= 0x55;
    assert_eq!(reason(&[tampered]), Err("bad_signature"));
    // Every truncation and every single-byte flip: refused or (for a flip
    // in an unsigned part) accepted, never a panic.
    for cut in 0..good.len() {
        assert!(reason(&[good[..cut].to_vec()]).is_err(), "truncated at {cut}");
    }
    for at in 0..good.len() {
        let mut flipped = good.clone();
        flipped[at] ^= 0x80;
        let _ = reason(&[flipped]);
    }
    assert!(Validator::new(TD, "", SKEW).is_err(), "an empty bundle");
    assert!(Validator::new(
        TD,
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        SKEW
    )
    .is_err());
}

/// The real openssl tools agree: `openssl verify` accepts an issued SVID,
/// refuses it once our CRL lists it, and `openssl x509 -text` shows the
/// SPIFFE fields.
#[test]
fn openssl_verifies_the_svid_shows_its_spiffe_fields_and_honours_the_crl() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = ca();
    let svid = ca.issue(&node("12D3KooWpeer"), HOUR).expect("issued");
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("written");
        path
    };
    let bundle = write("bundle.pem", ca.bundle_pem());
    let leaf = write("svid.pem", &svid.cert_pem);
    let openssl = |args: &[&std::ffi::OsStr]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl runs (apt install openssl)");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (ok, text) = openssl(&[
        "verify".as_ref(),
        "-CAfile".as_ref(),
        bundle.as_os_str(),
        leaf.as_os_str(),
    ]);
    assert!(ok && text.contains(": OK"), "{text}");
    let (ok, text) = openssl(&[
        "x509".as_ref(),
        "-noout".as_ref(),
        "-text".as_ref(),
        "-in".as_ref(),
        leaf.as_os_str(),
    ]);
    assert!(ok, "{text}");
    for field in [
        "URI:spiffe://mesh.test/node/12D3KooWpeer",
        "CA:FALSE",
        "X509v3 Key Usage: critical",
        "Digital Signature",
        "TLS Web Server Authentication, TLS Web Client Authentication",
    ] {
        assert!(text.contains(field), "openssl x509 -text lacks {field:?}:\n{text}");
    }
    let crl = write(
        "crl.pem",
        &ca.crl_pem(
            &[Revoked {
                serial: svid.serial.clone(),
                at_unix: 1,
            }],
            1,
            HOUR,
        )
        .expect("crl"),
    );
    let (ok, text) = openssl(&[
        "verify".as_ref(),
        "-crl_check".as_ref(),
        "-CRLfile".as_ref(),
        crl.as_os_str(),
        "-CAfile".as_ref(),
        bundle.as_os_str(),
        leaf.as_os_str(),
    ]);
    assert!(!ok && text.contains("certificate revoked"), "{text}");
}

#[test]
fn a_new_bundle_is_put_in_force_whole_and_a_bad_one_keeps_the_previous() {
    let (old, new) = (ca(), ca());
    let trust = super::Trust::new(TD, old.bundle_pem(), Duration::ZERO, Default::default()).expect("trust");
    let hour = Duration::from_secs(3600);
    let of_new = [new.issue(&node("p"), hour).expect("SVID").cert_der];
    let of_old = [old.issue(&node("q"), hour).expect("SVID").cert_der];
    assert!(
        trust.validate(&of_new, Usage::Client).is_err(),
        "the new CA is not trusted yet"
    );
    let generation = trust.generation();

    // A rotation: the bundle holds both CAs while SVIDs of the old one live on.
    let both = format!("{}{}", old.bundle_pem(), new.bundle_pem());
    trust.set_bundle(&both).expect("bundle in force");
    assert!(trust.has_bundle(&both));
    assert_ne!(trust.generation(), generation, "kept verdicts are checked again");
    assert!(trust.validate(&of_new, Usage::Client).is_ok());
    assert!(trust.validate(&of_old, Usage::Client).is_ok());

    assert!(trust.set_bundle("not a bundle").is_err());
    assert!(trust.has_bundle(&both), "the previous bundle stays");
    trust.set_bundle(new.bundle_pem()).expect("the old CA retired");
    assert!(trust.validate(&of_old, Usage::Client).is_err());
    assert!(trust.validate(&of_new, Usage::Client).is_ok());
}
