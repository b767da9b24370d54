//! The handshake, version 2: three messages between the source and the
//! destination of routed traffic, mutually authenticated without signatures,
//! after the KK pattern of PQ-Noise (Angel et al., CCS 2022) with X-Wing as
//! the only KEM. The security argument is in docs/ARCHITECTURE.md.
//!
//! ```text
//! hybrid (the initiator holds the responder's key binding):
//! Init    I → R  kind, version, offer, sid_i, I's peer id, epoch of R's binding,
//!                ephemeral X-Wing key e_i, c1 = Encaps(R's static key)
//!                (+ a cookie, outside the transcript, when R asked for one)
//! Reply   R → I  kind, version, sid_i, sid_r, offer, suite,
//!                c2 = Encaps(e_i), c3 = Encaps(I's static key), MAC(confirm_r, th)
//! Finish  I → R  kind, sid_r, MAC(confirm_i, th)
//! ```
//!
//! `th` hashes the Init (without cookie) and the Reply up to its MAC; HKDF-SHA256
//! with salt `th` over `k1 ‖ k2 ‖ k3` gives both directions' keys and both
//! confirmation keys. Only R can open c1, so R's MAC proves R; only I can open
//! c3, so I's Finish proves I; e_i is thrown away after the Reply, so k2 keeps
//! the session secret when both static keys leak later (forward secrecy). Each
//! secret holds while either ML-KEM-768 or X25519 does (X-Wing).
//!
//! Without R's binding, an initiator that wants post-quantum sessions sends
//! an Init with offer [`Offer::Ask`] and an X25519 key: R answers with a
//! Capability message carrying its binding (no KEM work, no state), and the
//! initiator starts again hybrid; a classical-only R answers with a classical
//! Reply (X25519 `e_r`, R's libp2p signature over `th`), and I finishes with its
//! own signature over `H(th ‖ R's signature)`.
//!
//! The responder checks, before any KEM work, that the Init names the frame's
//! source as initiator and the epoch of its own current binding (else it sends
//! its binding). Failures before authentication (a MAC or signature that does
//! not check) are reported as such; [`Reject::Downgrade`] and a refused
//! classical suite come only from an authenticated Reply.

use std::time::Instant;

use hkdf::Hkdf;
use hmac::{KeyInit as _, Mac as _};
use libp2p::PeerId;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use x25519_dalek::{EphemeralSecret, PublicKey as X25519Public};
use zeroize::Zeroizing;

use crate::cookie::{CookieJar, COOKIE_LEN};
use crate::identity::{KeyBinding, PeerKeys, PqIdentity};
use crate::mode::{Answer, Offer};
use crate::session::{Session, SessionKeys};
use crate::wire::{Reader, Writer};
use crate::xwing::{self, SharedSecret, XWingSecret, CIPHERTEXT_LEN, PUBLIC_LEN};
use crate::{PqcMode, Reject, Suite};

/// Handshake protocol version.
pub const VERSION: u8 = 2;

const TRANSCRIPT_LABEL: &[u8] = b"x0tta6bl4/handshake/2";
const CONTEXT_RESPONDER: &[u8] = b"x0tta6bl4/handshake/2/responder";
const CONTEXT_INITIATOR: &[u8] = b"x0tta6bl4/handshake/2/initiator";
const MAC_LEN: usize = 32;

type HmacSha256 = hmac::Hmac<Sha256>;

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
    /// The responder's key binding, for an initiator that asked or used an old one.
    Capability = 5,
}

impl MessageKind {
    /// The kind of `message`.
    pub fn of(message: &[u8]) -> Result<Self, Reject> {
        match message.first() {
            Some(1) => Ok(MessageKind::Init),
            Some(2) => Ok(MessageKind::Reply),
            Some(3) => Ok(MessageKind::Finish),
            Some(4) => Ok(MessageKind::Cookie),
            Some(5) => Ok(MessageKind::Capability),
            _ => Err(Reject::Malformed("handshake message kind")),
        }
    }
}

/// The responder's session id a Finish is addressed to (to find the waiting
/// [`Responder`] before the Finish is checked).
pub fn finish_session_id(finish: &[u8]) -> Result<u64, Reject> {
    let mut r = Reader::new(finish, "finish");
    if r.u8()? != MessageKind::Finish as u8 {
        return Err(Reject::Malformed("finish"));
    }
    r.u64()
}

/// The initiator's ephemeral secrets, by offer.
enum Ephemeral {
    /// The ephemeral X-Wing key and the secret sent to R's static key.
    Hybrid { secret: XWingSecret, k1: SharedSecret },
    /// An X25519 key, taken by the one Reply that passes every check.
    Classical(Option<EphemeralSecret>),
}

/// The initiator between Init and Reply.
pub struct Initiator {
    local_id: u64,
    peer: PeerKeys,
    mode: PqcMode,
    offer: Offer,
    ephemeral: Ephemeral,
    init: Vec<u8>,
    spent: bool,
}

impl Initiator {
    /// Starts a handshake with `peer` under `mode` (hybrid when `peer` comes
    /// with post-quantum keys); returns the Init message.
    pub fn start(identity: &PqIdentity, peer: PeerKeys, mode: PqcMode) -> Result<(Self, Vec<u8>), Reject> {
        let offer = mode.offer(peer.pq.is_some());
        let local_id = rand::random();
        let mut w = Writer::with_capacity(64 + PUBLIC_LEN + CIPHERTEXT_LEN);
        w.u8(MessageKind::Init as u8)
            .u8(VERSION)
            .u8(offer.to_byte())
            .u64(local_id)
            .var(&identity.peer_id().to_bytes());
        let ephemeral = match (offer, &peer.pq) {
            (Offer::Hybrid, Some(pq)) => {
                let (secret, public) = XWingSecret::generate();
                let (c1, k1) = xwing::encapsulate(&pq.xwing)?;
                w.u64(pq.epoch).fixed(&public[..]).fixed(&c1[..]);
                Ephemeral::Hybrid { secret, k1 }
            }
            _ => {
                let secret = EphemeralSecret::random();
                w.u64(0).fixed(X25519Public::from(&secret).as_bytes());
                Ephemeral::Classical(Some(secret))
            }
        };
        let init = w.finish();
        let message = with_cookie(&init, None);
        let initiator = Self {
            local_id,
            peer,
            mode,
            offer,
            ephemeral,
            init,
            spent: false,
        };
        Ok((initiator, message))
    }

    /// This side's session id (the responder's Reply, Cookie and Capability carry it).
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

    /// The binding in the responder's Capability message, if it is for this
    /// handshake and names the peer (verify it before use).
    pub fn capability(&self, message: &[u8]) -> Result<KeyBinding, Reject> {
        let mut r = Reader::new(message, "capability");
        if r.u8()? != MessageKind::Capability as u8 {
            return Err(Reject::Malformed("capability"));
        }
        if r.u64()? != self.local_id {
            return Err(Reject::UnknownHandshake);
        }
        let binding = KeyBinding::decode(r.var()?)?;
        r.end()?;
        if binding.public_key.to_peer_id() != self.peer.peer_id {
            return Err(Reject::BadBinding);
        }
        Ok(binding)
    }

    /// Handles the responder's Reply: checks its key confirmation (hybrid) or
    /// signature (classical), then the offer it saw and the suite it chose;
    /// returns the session and the Finish message. A Reply that fails a check
    /// leaves the initiator as it was, so a forged Reply (frame sources are not
    /// authenticated) cannot end a handshake the real peer is still answering;
    /// once one succeeds, the initiator is spent.
    pub fn finish(&mut self, identity: &PqIdentity, reply: &[u8], now: Instant) -> Result<(Session, Vec<u8>), Reject> {
        let mut r = Reader::new(reply, "reply");
        if r.u8()? != MessageKind::Reply as u8 {
            return Err(Reject::Malformed("reply"));
        }
        check_version(r.u8()?)?;
        if r.u64()? != self.local_id || self.spent {
            return Err(Reject::UnknownHandshake);
        }
        let remote_id = r.u64()?;
        let offer_seen = Offer::from_byte(r.u8()?)?;
        let suite = Suite::from_byte(r.u8()?)?;
        let (keys, finish) = match (&mut self.ephemeral, suite) {
            (Ephemeral::Hybrid { secret, k1 }, Suite::X25519MlKem768) => {
                let k2 = secret.decapsulate(r.fixed(CIPHERTEXT_LEN)?)?;
                let k3 = identity.decapsulate(r.fixed(CIPHERTEXT_LEN)?)?;
                let th = transcript(&self.init, r.consumed());
                let their_mac = r.fixed(MAC_LEN)?;
                r.end()?;
                let schedule = KeySchedule::new(&th, &[&k1[..], &k2[..], &k3[..]]);
                if !bool::from(schedule.mac(Role::Responder, &th).ct_eq(their_mac)) {
                    return Err(Reject::BadConfirmation);
                }
                // Authenticated from here: R saw our Init as we sent it.
                if offer_seen != self.offer {
                    return Err(Reject::Downgrade);
                }
                let mut w = Writer::with_capacity(16 + MAC_LEN);
                w.u8(MessageKind::Finish as u8)
                    .u64(remote_id)
                    .fixed(&schedule.mac(Role::Initiator, &th));
                (schedule.session_keys(Role::Initiator), w.finish())
            }
            (Ephemeral::Classical(secret), Suite::X25519) => {
                let e_r = X25519Public::from(r.array::<32>()?);
                let th = transcript(&self.init, r.consumed());
                let signature = r.var()?;
                r.end()?;
                if !self.peer.verify_classical(&th, CONTEXT_RESPONDER, signature) {
                    return Err(Reject::BadSignature);
                }
                // Authenticated from here: R signed that it answers classically.
                if offer_seen != self.offer {
                    return Err(Reject::Downgrade);
                }
                self.mode.accept_classical()?;
                let dh = secret.take().ok_or(Reject::UnknownHandshake)?.diffie_hellman(&e_r);
                if !dh.was_contributory() {
                    return Err(Reject::Malformed("X25519 key"));
                }
                let t3 = Sha256::new().chain_update(th).chain_update(signature).finalize();
                let mut w = Writer::with_capacity(16 + 80);
                w.u8(MessageKind::Finish as u8)
                    .u64(remote_id)
                    .var(&identity.sign_classical(&t3, CONTEXT_INITIATOR));
                let schedule = KeySchedule::new(&th, &[dh.as_bytes()]);
                (schedule.session_keys(Role::Initiator), w.finish())
            }
            _ => return Err(Reject::Malformed("suite not offered")),
        };
        self.spent = true;
        let session = Session::new(self.local_id, remote_id, self.peer.peer_id, suite, keys, true, now);
        Ok((session, finish))
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
    /// Send this node's binding (the initiator asked, or used an old one) and
    /// keep no state.
    Capability {
        /// The Capability message.
        message: Vec<u8>,
    },
}

/// How the responder checks the Finish.
enum Confirmation {
    /// The initiator's MAC.
    Mac([u8; MAC_LEN]),
    /// The initiator's libp2p signature over this hash.
    Signature([u8; 32]),
}

/// The responder between Reply and Finish.
pub struct Responder {
    local_id: u64,
    remote_id: u64,
    peer: PeerKeys,
    suite: Suite,
    confirmation: Confirmation,
    /// Taken by the one Finish that passes every check.
    keys: Option<SessionKeys>,
}

impl Responder {
    /// Handles an Init that arrived from `src`. `peer_keys` looks up the
    /// initiator's verified keys; `cookies` is `Some` when the node is under
    /// handshake load, and then an Init without a valid cookie gets only a
    /// Cookie message. Nothing costly happens before the initiator is checked
    /// to be `src`, the cookie holds and the Init uses this node's current keys.
    pub fn respond(
        identity: &PqIdentity,
        src: &PeerId,
        init: &[u8],
        mode: PqcMode,
        peer_keys: impl FnOnce(&PeerId) -> Option<PeerKeys>,
        cookies: Option<&mut CookieJar>,
        now: Instant,
    ) -> Result<Response, Reject> {
        let parsed = ParsedInit::parse(init)?;
        if parsed.initiator != *src {
            return Err(Reject::SourceMismatch);
        }
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
        let suite = match mode.answer(parsed.offer)? {
            Answer::Session(Suite::X25519MlKem768) if parsed.epoch != identity.epoch() => {
                return Ok(capability(identity, parsed.sid))
            }
            Answer::Session(suite) => suite,
            Answer::Capability => return Ok(capability(identity, parsed.sid)),
        };
        let peer = peer_keys(&parsed.initiator).ok_or(Reject::BindingUnknown)?;
        let local_id = rand::random();
        let mut w = Writer::with_capacity(64 + 2 * CIPHERTEXT_LEN + MAC_LEN);
        w.u8(MessageKind::Reply as u8)
            .u8(VERSION)
            .u64(parsed.sid)
            .u64(local_id)
            .u8(parsed.offer.to_byte())
            .u8(suite.to_byte());
        let (keys, confirmation) = match (suite, &parsed.ephemeral) {
            (Suite::X25519MlKem768, InitEphemeral::Hybrid { e_i, c1 }) => {
                let static_i = &peer.pq.as_ref().ok_or(Reject::BindingUnknown)?.xwing;
                let e_i = xwing::public_key(e_i).ok_or(Reject::Malformed("X-Wing key"))?;
                let k1 = identity.decapsulate(c1)?;
                let (c2, k2) = xwing::encapsulate(&e_i)?;
                let (c3, k3) = xwing::encapsulate(static_i)?;
                w.fixed(&c2[..]).fixed(&c3[..]);
                let th = transcript(parsed.signed, w.bytes());
                let schedule = KeySchedule::new(&th, &[&k1[..], &k2[..], &k3[..]]);
                w.fixed(&schedule.mac(Role::Responder, &th));
                let expected = Confirmation::Mac(schedule.mac(Role::Initiator, &th));
                (schedule.session_keys(Role::Responder), expected)
            }
            (Suite::X25519, InitEphemeral::Classical(e_i)) => {
                let secret = EphemeralSecret::random();
                w.fixed(X25519Public::from(&secret).as_bytes());
                let dh = secret.diffie_hellman(e_i);
                if !dh.was_contributory() {
                    return Err(Reject::Malformed("X25519 key"));
                }
                let th = transcript(parsed.signed, w.bytes());
                let signature = identity.sign_classical(&th, CONTEXT_RESPONDER);
                w.var(&signature);
                let t3 = Sha256::new().chain_update(th).chain_update(&signature).finalize();
                let schedule = KeySchedule::new(&th, &[dh.as_bytes()]);
                (
                    schedule.session_keys(Role::Responder),
                    Confirmation::Signature(t3.into()),
                )
            }
            _ => return Err(Reject::Malformed("init")),
        };
        let responder = Responder {
            local_id,
            remote_id: parsed.sid,
            peer,
            suite,
            confirmation,
            keys: Some(keys),
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

    /// Handles the Finish: checks the initiator's MAC (hybrid) or signature
    /// (classical); returns the session. A Finish that fails a check leaves
    /// the responder waiting for the real one; once one succeeds, the
    /// responder is spent.
    pub fn complete(&mut self, finish: &[u8], now: Instant) -> Result<Session, Reject> {
        let mut r = Reader::new(finish, "finish");
        if r.u8()? != MessageKind::Finish as u8 {
            return Err(Reject::Malformed("finish"));
        }
        if r.u64()? != self.local_id {
            return Err(Reject::UnknownHandshake);
        }
        match &self.confirmation {
            Confirmation::Mac(expected) => {
                let mac = r.fixed(MAC_LEN)?;
                r.end()?;
                if !bool::from(expected.ct_eq(mac)) {
                    return Err(Reject::BadConfirmation);
                }
            }
            Confirmation::Signature(t3) => {
                let signature = r.var()?;
                r.end()?;
                if !self.peer.verify_classical(t3, CONTEXT_INITIATOR, signature) {
                    return Err(Reject::BadSignature);
                }
            }
        }
        let keys = self.keys.take().ok_or(Reject::UnknownHandshake)?;
        Ok(Session::new(
            self.local_id,
            self.remote_id,
            self.peer.peer_id,
            self.suite,
            keys,
            false,
            now,
        ))
    }
}

/// The Capability message answering Init `sid`.
fn capability(identity: &PqIdentity, sid: u64) -> Response {
    let binding = identity.binding().encode();
    let mut w = Writer::with_capacity(16 + binding.len());
    w.u8(MessageKind::Capability as u8).u64(sid).var(&binding);
    Response::Capability { message: w.finish() }
}

/// The initiator's ephemeral part of an Init.
enum InitEphemeral<'a> {
    Hybrid { e_i: &'a [u8], c1: &'a [u8] },
    Classical(X25519Public),
}

/// The fields of an Init.
struct ParsedInit<'a> {
    offer: Offer,
    sid: u64,
    initiator: PeerId,
    epoch: u64,
    ephemeral: InitEphemeral<'a>,
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
        let epoch = r.u64()?;
        let ephemeral = match offer {
            Offer::Hybrid => InitEphemeral::Hybrid {
                e_i: r.fixed(PUBLIC_LEN)?,
                c1: r.fixed(CIPHERTEXT_LEN)?,
            },
            Offer::Classical | Offer::Ask => InitEphemeral::Classical(X25519Public::from(r.array::<32>()?)),
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
            epoch,
            ephemeral,
            signed,
            cookie,
        })
    }

    /// What a cookie is bound to: the source (checked to be the initiator)
    /// and the ephemeral key.
    fn cookie_subject(&self) -> Vec<u8> {
        let ephemeral = match &self.ephemeral {
            InitEphemeral::Hybrid { e_i, .. } => *e_i,
            InitEphemeral::Classical(e) => e.as_bytes(),
        };
        [&self.initiator.to_bytes()[..], ephemeral].concat()
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

/// `th`: the hash of the Init (without cookie) and the Reply up to its MAC
/// or signature.
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

/// Which end a key or MAC belongs to.
#[derive(Clone, Copy)]
enum Role {
    Initiator,
    Responder,
}

/// HKDF-SHA256 with salt `th` over the shared secrets.
struct KeySchedule(Hkdf<Sha256>);

impl KeySchedule {
    fn new(th: &[u8; 32], secrets: &[&[u8]]) -> Self {
        let ikm = Zeroizing::new(secrets.concat());
        Self(Hkdf::new(Some(th), &ikm))
    }

    fn expand(&self, label: &[u8]) -> [u8; 32] {
        let mut key = [0u8; 32];
        // 32 bytes are far below HKDF-SHA256's limit of 8,160.
        let _ = self.0.expand(label, &mut key);
        key
    }

    /// The sending and receiving keys of `role`.
    fn session_keys(&self, role: Role) -> SessionKeys {
        let i2r = self.expand(b"x0tta6bl4/2/keys/i2r");
        let r2i = self.expand(b"x0tta6bl4/2/keys/r2i");
        match role {
            Role::Initiator => SessionKeys::new(i2r, r2i),
            Role::Responder => SessionKeys::new(r2i, i2r),
        }
    }

    /// The key confirmation MAC of `role` over `th`.
    fn mac(&self, role: Role, th: &[u8; 32]) -> [u8; MAC_LEN] {
        let label: &[u8] = match role {
            Role::Initiator => b"x0tta6bl4/2/confirm/initiator",
            Role::Responder => b"x0tta6bl4/2/confirm/responder",
        };
        let key = Zeroizing::new(self.expand(label));
        let mut mac = HmacSha256::new_from_slice(&key[..]).expect("HMAC accepts keys of any length");
        mac.update(th);
        mac.finalize().into_bytes().into()
    }
}
