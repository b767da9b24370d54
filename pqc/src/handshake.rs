//! The hybrid handshake: three messages between the source and destination of
//! routed traffic, mutually authenticated.
//!
//! ```text
//! Init    I → R  version, offer, sid_i, I's peer id, X25519 e_i,
//!                [hybrid: ephemeral ML-KEM-768 key ek_i, ct_s = Encaps(R's static key)]
//!                (+ a cookie, outside the transcript, when R asked for one)
//! Reply   R → I  sid_i, sid_r, the offer R saw, the suite R chose, R's peer id,
//!                X25519 e_r, [hybrid: ct_e = Encaps(ek_i)],
//!                R's signature over T2 = H(Init ‖ Reply without signature)
//! Finish  I → R  sid_r, I's signature over T3 = H(T2 ‖ R's signature)
//! ```
//!
//! Session keys: HKDF-SHA256 with salt T2 over `ss_e ‖ ss_s ‖ X25519(e_i, e_r)`
//! for the hybrid suite (the X25519MLKEM768 construction of TLS, plus the
//! responder's static KEM key so only the real R can finish), `X25519(e_i, e_r)`
//! alone for the classical one. The ephemeral ML-KEM and X25519 keys give
//! forward secrecy, and the secret holds while either X25519 or ML-KEM does.
//! Signatures are ML-DSA-65 for the hybrid suite and the libp2p ed25519 key for
//! the classical one, each with its role as context. The offer is in both
//! signed transcripts and R echoes it, so stripping the post-quantum offer is
//! seen ([`Reject::Downgrade`]), and under `required` refused outright.

use std::time::Instant;

use hkdf::Hkdf;
use libcrux_ml_kem::mlkem768::{self as kem, MlKem768PrivateKey};
use libp2p::PeerId;
use sha2::{Digest as _, Sha256};
use x25519_dalek::{EphemeralSecret, PublicKey as X25519Public};
use zeroize::Zeroizing;

use crate::cookie::{CookieJar, COOKIE_LEN};
use crate::identity::{decapsulate, kem_public_key, random, PeerKeys, PqIdentity, KEM_CIPHERTEXT_LEN, KEM_PUBLIC_LEN};
use crate::session::{Session, SessionKeys};
use crate::wiped::Wiped;
use crate::wire::{Reader, Writer};
use crate::{Offer, PqcMode, Reject, Suite};

/// Handshake protocol version.
pub const VERSION: u8 = 1;

const TRANSCRIPT_LABEL: &[u8] = b"x0tta6bl4/handshake/1";
const CONTEXT_RESPONDER: &[u8] = b"x0tta6bl4/handshake/responder";
const CONTEXT_INITIATOR: &[u8] = b"x0tta6bl4/handshake/initiator";

/// The kind of a handshake message (its first byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    /// First message, initiator to responder.
    Init = 1,
    /// Second message, responder to initiator.
    Reply = 2,
    /// Third message, initiator to responder.
    Finish = 3,
    /// A responder under load asks for the initiation again with this cookie.
    Cookie = 4,
}

impl MessageKind {
    /// The kind of `message`.
    pub fn of(message: &[u8]) -> Result<Self, Reject> {
        match message.first() {
            Some(1) => Ok(MessageKind::Init),
            Some(2) => Ok(MessageKind::Reply),
            Some(3) => Ok(MessageKind::Finish),
            Some(4) => Ok(MessageKind::Cookie),
            _ => Err(Reject::Malformed("handshake message kind")),
        }
    }
}

/// The responder's session id a Finish is addressed to (to find the waiting
/// [`Responder`] before the Finish is verified).
pub fn finish_session_id(finish: &[u8]) -> Result<u64, Reject> {
    let mut r = Reader::new(finish, "finish");
    if r.u8()? != MessageKind::Finish as u8 {
        return Err(Reject::Malformed("finish"));
    }
    r.u64()
}

/// The initiator between Init and Reply.
pub struct Initiator {
    local_id: u64,
    peer: PeerKeys,
    mode: PqcMode,
    offer: Offer,
    /// Taken by the one Reply that passes every check.
    x25519: Option<EphemeralSecret>,
    kem: Option<(Wiped<MlKem768PrivateKey>, [u8; 32])>,
    init: Vec<u8>,
}

impl Initiator {
    /// Starts a handshake with `peer` under `mode`; returns the Init message.
    pub fn start(identity: &PqIdentity, peer: PeerKeys, mode: PqcMode) -> Result<(Self, Vec<u8>), Reject> {
        let offer = mode.offer(&peer)?;
        let local_id = rand::random();
        let x25519 = EphemeralSecret::random();
        let mut w = Writer::with_capacity(64 + KEM_PUBLIC_LEN + KEM_CIPHERTEXT_LEN);
        w.u8(MessageKind::Init as u8)
            .u8(VERSION)
            .u8(offer.to_byte())
            .u64(local_id)
            .var(&identity.peer_id().to_bytes())
            .fixed(X25519Public::from(&x25519).as_bytes());
        let kem = match (offer.has(Suite::X25519MlKem768), &peer.pq) {
            (true, Some(pq)) => {
                let seed = Zeroizing::new(random::<64>());
                let (ephemeral, ephemeral_public) = kem::generate_key_pair(*seed).into_parts();
                let (ct_s, ss_s) = kem::encapsulate(&pq.kem, random());
                w.fixed(ephemeral_public.as_slice()).fixed(ct_s.as_slice());
                Some((Wiped::new(ephemeral, MlKem768PrivateKey::default), ss_s))
            }
            _ => None,
        };
        let init = w.finish();
        let message = with_cookie(&init, None);
        let initiator = Self {
            local_id,
            peer,
            mode,
            offer,
            x25519: Some(x25519),
            kem,
            init,
        };
        Ok((initiator, message))
    }

    /// This side's session id (the responder's Reply and Cookie carry it).
    pub fn local_id(&self) -> u64 {
        self.local_id
    }

    /// The peer this handshake is with.
    pub fn peer(&self) -> &PeerId {
        &self.peer.peer_id
    }

    /// The Init message again, with the cookie from the responder's Cookie message.
    pub fn init_with_cookie(&self, cookie_message: &[u8]) -> Result<Vec<u8>, Reject> {
        let mut r = Reader::new(cookie_message, "cookie message");
        if r.u8()? != MessageKind::Cookie as u8 {
            return Err(Reject::Malformed("cookie message"));
        }
        if r.u64()? != self.local_id {
            return Err(Reject::UnknownHandshake);
        }
        let cookie: [u8; COOKIE_LEN] = r.array()?;
        r.end()?;
        Ok(with_cookie(&self.init, Some(&cookie)))
    }

    /// Handles the responder's Reply: checks the offer it saw and the suite it
    /// chose, verifies its signature; returns the session and the Finish message.
    /// A Reply that fails a check leaves the initiator as it was, so a forged
    /// Reply (frame sources are not authenticated) cannot end a handshake the
    /// real peer is still answering; once one succeeds, the initiator is spent.
    pub fn finish(&mut self, identity: &PqIdentity, reply: &[u8], now: Instant) -> Result<(Session, Vec<u8>), Reject> {
        let mut r = Reader::new(reply, "reply");
        if r.u8()? != MessageKind::Reply as u8 {
            return Err(Reject::Malformed("reply"));
        }
        check_version(r.u8()?)?;
        if r.u64()? != self.local_id {
            return Err(Reject::UnknownHandshake);
        }
        let remote_id = r.u64()?;
        let offer_seen = r.u8()?;
        let suite = Suite::from_byte(r.u8()?)?;
        if offer_seen != self.offer.to_byte() {
            return Err(Reject::Downgrade);
        }
        self.mode.accept(self.offer, suite)?;
        if PeerId::from_bytes(r.var()?).ok() != Some(self.peer.peer_id) {
            return Err(Reject::BadSignature);
        }
        let e_r = X25519Public::from(r.array::<32>()?);
        let kem_secrets = match (suite, &self.kem) {
            (Suite::X25519MlKem768, Some((ephemeral, ss_s))) => {
                let ct_e = r.fixed(KEM_CIPHERTEXT_LEN)?;
                let ss_e = decapsulate(ephemeral, ct_e)?;
                Some([ss_e, *ss_s])
            }
            (Suite::X25519MlKem768, None) => return Err(Reject::Malformed("suite not offered")),
            (Suite::X25519, _) => None,
        };
        let reply_signed = r.consumed();
        let signature = r.var()?;
        r.end()?;
        let t2 = transcript(&self.init, reply_signed);
        if !self.peer.verify(suite.is_hybrid(), &t2, CONTEXT_RESPONDER, signature) {
            return Err(Reject::BadSignature);
        }
        let x25519 = self.x25519.take().ok_or(Reject::UnknownHandshake)?;
        let dh = x25519.diffie_hellman(&e_r);
        if !dh.was_contributory() {
            return Err(Reject::Malformed("X25519 key"));
        }
        let (i2r, r2i) = key_schedule(&t2, kem_secrets.as_ref(), dh.as_bytes());
        let t3 = Sha256::new().chain_update(t2).chain_update(signature).finalize();
        let my_signature = sign(identity, suite, &t3, CONTEXT_INITIATOR);
        let mut w = Writer::with_capacity(16 + my_signature.len());
        w.u8(MessageKind::Finish as u8).u64(remote_id).var(&my_signature);
        let keys = SessionKeys { send: i2r, recv: r2i };
        let session = Session::new(self.local_id, remote_id, self.peer.peer_id, suite, keys, now);
        Ok((session, w.finish()))
    }
}

/// What the responder makes of an Init.
pub enum Response {
    /// Go on: send `reply`, keep `responder` until the Finish arrives.
    Reply {
        /// Waits for the Finish (boxed: it holds the peer's decoded keys).
        responder: Box<Responder>,
        /// The Reply message.
        reply: Vec<u8>,
    },
    /// Under load: send this Cookie message and keep no state.
    Cookie {
        /// The Cookie message.
        message: Vec<u8>,
        /// Why: [`Reject::CookieRequired`] (none sent) or [`Reject::BadCookie`].
        reason: Reject,
    },
}

/// The responder between Reply and Finish.
pub struct Responder {
    local_id: u64,
    remote_id: u64,
    peer: PeerKeys,
    suite: Suite,
    t3: [u8; 32],
    /// Taken by the one Finish that passes every check.
    keys: Option<SessionKeys>,
}

impl Responder {
    /// Handles an Init. `peer_keys` looks up the initiator's verified keys;
    /// `cookies` is `Some` when the node is under handshake load, and then an
    /// Init without a valid cookie gets only a Cookie message, before any
    /// ML-KEM or ML-DSA work.
    pub fn respond(
        identity: &PqIdentity,
        init: &[u8],
        mode: PqcMode,
        peer_keys: impl FnOnce(&PeerId) -> Option<PeerKeys>,
        cookies: Option<&mut CookieJar>,
        now: Instant,
    ) -> Result<Response, Reject> {
        let parsed = ParsedInit::parse(init)?;
        if let Some(jar) = cookies {
            let who = parsed.cookie_subject();
            let reason = match parsed.cookie {
                None => Some(Reject::CookieRequired),
                Some(cookie) if !jar.check(&who, cookie, now) => Some(Reject::BadCookie),
                Some(_) => None,
            };
            if let Some(reason) = reason {
                let mut w = Writer::with_capacity(32);
                w.u8(MessageKind::Cookie as u8)
                    .u64(parsed.sid)
                    .fixed(&jar.issue(&who, now));
                return Ok(Response::Cookie {
                    message: w.finish(),
                    reason,
                });
            }
        }
        let suite = mode.choose(parsed.offer)?;
        let peer = peer_keys(&parsed.initiator).ok_or(Reject::BadBinding)?;
        if suite.is_hybrid() && peer.pq.is_none() {
            return Err(Reject::BadBinding);
        }
        let local_id = rand::random();
        let x25519 = EphemeralSecret::random();
        let mut w = Writer::with_capacity(64 + KEM_CIPHERTEXT_LEN + 3400);
        w.u8(MessageKind::Reply as u8)
            .u8(VERSION)
            .u64(parsed.sid)
            .u64(local_id)
            .u8(parsed.offer.to_byte())
            .u8(suite.to_byte())
            .var(&identity.peer_id().to_bytes())
            .fixed(X25519Public::from(&x25519).as_bytes());
        let kem_secrets = match (suite, parsed.kem) {
            (Suite::X25519MlKem768, Some((ek_i, ct_s))) => {
                let ek_i = kem_public_key(ek_i).ok_or(Reject::Malformed("ML-KEM key"))?;
                let ss_s = identity.decapsulate(ct_s)?;
                let (ct_e, ss_e) = kem::encapsulate(&ek_i, random());
                w.fixed(ct_e.as_slice());
                Some([ss_e, ss_s])
            }
            (Suite::X25519MlKem768, None) => return Err(Reject::Malformed("init")),
            (Suite::X25519, _) => None,
        };
        let dh = x25519.diffie_hellman(&parsed.e);
        if !dh.was_contributory() {
            return Err(Reject::Malformed("X25519 key"));
        }
        let t2 = transcript(parsed.signed, w.bytes());
        let signature = sign(identity, suite, &t2, CONTEXT_RESPONDER);
        w.var(&signature);
        let (i2r, r2i) = key_schedule(&t2, kem_secrets.as_ref(), dh.as_bytes());
        let t3 = Sha256::new().chain_update(t2).chain_update(&signature).finalize();
        let responder = Responder {
            local_id,
            remote_id: parsed.sid,
            peer,
            suite,
            t3: t3.into(),
            keys: Some(SessionKeys { send: r2i, recv: i2r }),
        };
        Ok(Response::Reply {
            responder: Box::new(responder),
            reply: w.finish(),
        })
    }

    /// This side's session id (the Finish carries it).
    pub fn local_id(&self) -> u64 {
        self.local_id
    }

    /// The initiator.
    pub fn peer(&self) -> &PeerId {
        &self.peer.peer_id
    }

    /// Handles the Finish: verifies the initiator's signature; returns the
    /// session. A Finish that fails a check leaves the responder waiting for
    /// the real one; once one succeeds, the responder is spent.
    pub fn complete(&mut self, finish: &[u8], now: Instant) -> Result<Session, Reject> {
        let mut r = Reader::new(finish, "finish");
        if r.u8()? != MessageKind::Finish as u8 {
            return Err(Reject::Malformed("finish"));
        }
        if r.u64()? != self.local_id {
            return Err(Reject::UnknownHandshake);
        }
        let signature = r.var()?;
        r.end()?;
        if !self
            .peer
            .verify(self.suite.is_hybrid(), &self.t3, CONTEXT_INITIATOR, signature)
        {
            return Err(Reject::BadSignature);
        }
        let keys = self.keys.take().ok_or(Reject::UnknownHandshake)?;
        Ok(Session::new(
            self.local_id,
            self.remote_id,
            self.peer.peer_id,
            self.suite,
            keys,
            now,
        ))
    }
}

/// The fields of an Init.
struct ParsedInit<'a> {
    offer: Offer,
    sid: u64,
    initiator: PeerId,
    e: X25519Public,
    kem: Option<(&'a [u8], &'a [u8])>,
    signed: &'a [u8],
    cookie: Option<&'a [u8]>,
}

impl<'a> ParsedInit<'a> {
    fn parse(init: &'a [u8]) -> Result<Self, Reject> {
        let mut r = Reader::new(init, "init");
        if r.u8()? != MessageKind::Init as u8 {
            return Err(Reject::Malformed("init"));
        }
        check_version(r.u8()?)?;
        let offer = Offer::from_byte(r.u8()?)?;
        let sid = r.u64()?;
        let initiator = PeerId::from_bytes(r.var()?).map_err(|_| Reject::Malformed("init peer id"))?;
        let e = X25519Public::from(r.array::<32>()?);
        let kem = match offer.has(Suite::X25519MlKem768) {
            true => Some((r.fixed(KEM_PUBLIC_LEN)?, r.fixed(KEM_CIPHERTEXT_LEN)?)),
            false => None,
        };
        let signed = r.consumed();
        let cookie = match r.u8()? {
            0 => None,
            1 => Some(r.fixed(COOKIE_LEN)?),
            _ => return Err(Reject::Malformed("init cookie flag")),
        };
        r.end()?;
        Ok(Self {
            offer,
            sid,
            initiator,
            e,
            kem,
            signed,
            cookie,
        })
    }

    /// What a cookie is bound to: the initiator and its ephemeral key.
    fn cookie_subject(&self) -> Vec<u8> {
        [&self.initiator.to_bytes()[..], self.e.as_bytes()].concat()
    }
}

fn check_version(version: u8) -> Result<(), Reject> {
    match version {
        VERSION => Ok(()),
        other => Err(Reject::UnsupportedVersion(other)),
    }
}

fn with_cookie(init: &[u8], cookie: Option<&[u8; COOKIE_LEN]>) -> Vec<u8> {
    let mut message = Vec::with_capacity(init.len() + 1 + COOKIE_LEN);
    message.extend_from_slice(init);
    match cookie {
        Some(cookie) => {
            message.push(1);
            message.extend_from_slice(cookie);
        }
        None => message.push(0),
    }
    message
}

/// T2: the hash of the Init (without cookie) and the Reply up to its signature.
fn transcript(init: &[u8], reply: &[u8]) -> [u8; 32] {
    Sha256::new()
        .chain_update(TRANSCRIPT_LABEL)
        .chain_update((init.len() as u32).to_be_bytes())
        .chain_update(init)
        .chain_update((reply.len() as u32).to_be_bytes())
        .chain_update(reply)
        .finalize()
        .into()
}

/// Initiator-to-responder and responder-to-initiator keys.
fn key_schedule(t2: &[u8; 32], kem: Option<&[[u8; 32]; 2]>, dh: &[u8; 32]) -> ([u8; 32], [u8; 32]) {
    let mut ikm = Vec::with_capacity(96);
    if let Some([ss_e, ss_s]) = kem {
        ikm.extend_from_slice(ss_e);
        ikm.extend_from_slice(ss_s);
    }
    ikm.extend_from_slice(dh);
    let hkdf = Hkdf::<Sha256>::new(Some(t2), &ikm);
    let (mut i2r, mut r2i) = ([0u8; 32], [0u8; 32]);
    // 32 bytes are far below HKDF-SHA256's limit of 8,160.
    let _ = hkdf.expand(b"x0tta6bl4/keys/i2r", &mut i2r);
    let _ = hkdf.expand(b"x0tta6bl4/keys/r2i", &mut r2i);
    (i2r, r2i)
}

fn sign(identity: &PqIdentity, suite: Suite, message: &[u8], context: &[u8]) -> Vec<u8> {
    match suite {
        Suite::X25519MlKem768 => identity.sign_pq(message, context),
        Suite::X25519 => identity.sign_classical(message, context),
    }
}
