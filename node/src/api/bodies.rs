//! Every JSON body the API accepts, parsed and checked exactly as its handler
//! does before any work: the entry point of the `api_bodies` fuzz target.

use super::alerts::AlertRequest;
use super::debug::{BlackholeRequest, FaultRequest, HandshakeFloodRequest, ProbeRequest, RawFrameRequest};
use super::error::ApiError;
use super::messages::{PingRequest, SendRequest};
use super::orders::OrderRequest;
use super::state::StateWrite;
use super::telemetry::{QuarantineRequest, ReleaseRequest};

/// An endpoint that takes a JSON body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// `POST /api/v1/messages`.
    Message,
    /// `POST /api/v1/ping`.
    Ping,
    /// `POST /api/v1/alerts` and `/alerts/resolve`.
    Alert,
    /// `POST /api/v1/quarantine`.
    Quarantine,
    /// `DELETE /api/v1/quarantine`.
    Release,
    /// `POST /api/v1/debug/fault`.
    Fault,
    /// `POST /api/v1/debug/frame`.
    RawFrame,
    /// `POST /api/v1/debug/blackhole`.
    Blackhole,
    /// `POST /api/v1/debug/handshakes`.
    Handshakes,
    /// `POST /api/v1/bench/probes`.
    Probes,
    /// `PUT /api/v1/state/{key}`.
    State,
    /// `POST /api/v1/orders`.
    Order,
}

impl Body {
    /// Every endpoint with a JSON body.
    pub const ALL: [Body; 12] = [
        Body::Message,
        Body::Ping,
        Body::Alert,
        Body::Quarantine,
        Body::Release,
        Body::Fault,
        Body::RawFrame,
        Body::Blackhole,
        Body::Handshakes,
        Body::Probes,
        Body::State,
        Body::Order,
    ];

    /// Parses and checks `bytes` as this endpoint does before acting on it;
    /// an error is what the client would get (400 with a reason).
    pub fn check(self, bytes: &[u8]) -> Result<(), ApiError> {
        match self {
            Body::Message => SendRequest::checked(bytes).map(drop),
            Body::Ping => PingRequest::checked(bytes).map(drop),
            Body::Alert => AlertRequest::checked(bytes).map(drop),
            Body::Quarantine => QuarantineRequest::checked(bytes).map(drop),
            Body::Release => ReleaseRequest::checked(bytes).map(drop),
            Body::Fault => FaultRequest::checked(bytes).map(drop),
            Body::RawFrame => RawFrameRequest::checked(bytes).map(drop),
            Body::Blackhole => BlackholeRequest::checked(bytes).map(drop),
            Body::Handshakes => HandshakeFloodRequest::checked(bytes).map(drop),
            Body::Probes => ProbeRequest::checked(bytes).map(drop),
            Body::State => StateWrite::checked(bytes).map(drop),
            Body::Order => OrderRequest::checked(bytes).map(drop),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Body;

    #[test]
    fn each_endpoint_accepts_a_valid_body_and_refuses_junk() {
        let peer = x0tta6bl4_actors::libp2p::PeerId::random().to_string();
        let valid = [
            (Body::Message, format!(r#"{{"to":"{peer}","text":"hi"}}"#)),
            (Body::Ping, format!(r#"{{"to":"{peer}"}}"#)),
            (Body::Alert, r#"{"name":"X","labels":{"a":"b"}}"#.to_string()),
            (
                Body::Quarantine,
                r#"{"addresses":["10.0.0.1"],"ttl_secs":5}"#.to_string(),
            ),
            (Body::Release, format!(r#"{{"peer":"{peer}"}}"#)),
            (Body::Fault, r#"{"actor":"router","kind":"panic"}"#.to_string()),
            (Body::RawFrame, format!(r#"{{"peer":"{peer}","hex":"ff00"}}"#)),
            (Body::Blackhole, r#"{"enabled":true,"kinds":["Sealed"]}"#.to_string()),
            (Body::Handshakes, format!(r#"{{"peer":"{peer}","count":3}}"#)),
            (Body::Probes, format!(r#"{{"to":"{peer}","count":3}}"#)),
            (Body::State, r#"{"value":{"on":true}}"#.to_string()),
            (Body::Order, r#"{"product":"node","currency":"ton"}"#.to_string()),
        ];
        for (body, json) in valid {
            assert!(body.check(json.as_bytes()).is_ok(), "{body:?}: {json}");
            assert!(body.check(b"{\"to\":").is_err(), "{body:?}");
            assert!(body.check(&[0xff, 0xfe]).is_err(), "{body:?}");
        }
        assert_eq!(Body::ALL.len(), 12);
    }

    #[test]
    fn checks_beyond_parsing_refuse_what_the_handlers_refuse() {
        let refused = [
            (Body::Message, r#"{"to":"not a peer","text":"x"}"#),
            (Body::Alert, r#"{"name":"bad name"}"#),
            (Body::Quarantine, r#"{"addresses":["10.0.0.1"],"ttl_secs":0}"#),
            (Body::Release, r#"{"addresses":["300.1.1.1"]}"#),
            (Body::RawFrame, r#"{"peer":"x","hex":"f"}"#),
            (Body::Blackhole, r#"{"enabled":true,"kinds":["Nope"]}"#),
            (Body::Fault, r#"{"actor":"router","kind":"explode"}"#),
            (Body::State, r#"{"value":1,"add":"x"}"#),
            (Body::State, r#"{}"#),
            (Body::Order, r#"{"product":"node","currency":"btc"}"#),
            (Body::Order, r#"{"product":""}"#),
        ];
        for (body, json) in refused {
            assert!(body.check(json.as_bytes()).is_err(), "{body:?}: {json}");
        }
    }
}
