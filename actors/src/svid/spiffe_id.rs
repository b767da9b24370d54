//! SPIFFE IDs (`spiffe://<trust domain>/<path>`), parsed by the rules of the
//! SPIFFE-ID standard: a lowercase trust domain of `[a-z0-9._-]`, path
//! segments of `[A-Za-z0-9._-]` that are neither empty nor `.` or `..`, no
//! percent-encoding, query, fragment, user info or port, at most 2,048 bytes.
//! Every violation is its own error with its own metric reason.

use std::fmt;

use thiserror::Error;

/// Longest SPIFFE ID accepted, in bytes (the standard's URI limit).
pub const MAX_ID_BYTES: usize = 2048;
/// Longest trust domain accepted, in bytes (a DNS name's limit).
pub const MAX_TRUST_DOMAIN_BYTES: usize = 255;

const SCHEME: &str = "spiffe://";

/// Why a string is not a valid SPIFFE ID.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SpiffeIdError {
    /// The string is empty.
    #[error("the SPIFFE ID is empty")]
    Empty,
    /// Longer than [`MAX_ID_BYTES`].
    #[error("the SPIFFE ID is {0} bytes long, over the limit of 2048")]
    TooLong(usize),
    /// It does not start with `spiffe://`.
    #[error("the SPIFFE ID does not start with spiffe://")]
    WrongScheme,
    /// Nothing between `spiffe://` and the path.
    #[error("the SPIFFE ID has no trust domain")]
    NoTrustDomain,
    /// Longer than [`MAX_TRUST_DOMAIN_BYTES`].
    #[error("the trust domain is {0} bytes long, over the limit of 255")]
    TrustDomainTooLong(usize),
    /// A `user@` part before the trust domain.
    #[error("the SPIFFE ID has user info")]
    UserInfo,
    /// A `:port` after the trust domain.
    #[error("the SPIFFE ID has a port")]
    Port,
    /// A character outside `[a-z0-9._-]` in the trust domain (uppercase included).
    #[error("the trust domain has the character {0:?}; only a-z, 0-9, '.', '-' and '_' are allowed")]
    TrustDomainChar(char),
    /// A `%` escape anywhere.
    #[error("the SPIFFE ID is percent-encoded")]
    PercentEncoded,
    /// A `?query`.
    #[error("the SPIFFE ID has a query")]
    Query,
    /// A `#fragment`.
    #[error("the SPIFFE ID has a fragment")]
    Fragment,
    /// `//` in the path, or a path that ends in `/`.
    #[error("the path has an empty segment")]
    EmptySegment,
    /// A `.` or `..` segment.
    #[error("the path has a '.' or '..' segment")]
    DotSegment,
    /// A character outside `[A-Za-z0-9._-]` in a path segment.
    #[error("the path has the character {0:?}; only A-Z, a-z, 0-9, '.', '-' and '_' are allowed")]
    PathChar(char),
    /// An SVID must name a workload: `spiffe://<trust domain>` alone is not one.
    #[error("the SPIFFE ID has no path: it names a trust domain, not a workload")]
    NoPath,
}

impl SpiffeIdError {
    /// Metric label of the refusal (`x0tta_svid_validations_total{reason}`).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Empty => "id_empty",
            Self::TooLong(_) => "id_too_long",
            Self::WrongScheme => "id_wrong_scheme",
            Self::NoTrustDomain => "id_no_trust_domain",
            Self::TrustDomainTooLong(_) => "id_trust_domain_too_long",
            Self::UserInfo => "id_user_info",
            Self::Port => "id_port",
            Self::TrustDomainChar(_) => "id_trust_domain_char",
            Self::PercentEncoded => "id_percent_encoded",
            Self::Query => "id_query",
            Self::Fragment => "id_fragment",
            Self::EmptySegment => "id_empty_segment",
            Self::DotSegment => "id_dot_segment",
            Self::PathChar(_) => "id_path_char",
            Self::NoPath => "id_no_path",
        }
    }
}

/// A valid SPIFFE ID naming a workload (its path is not empty).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SpiffeId {
    trust_domain: String,
    path: String,
}

impl SpiffeId {
    /// Parses `id` by every rule of the standard.
    pub fn parse(id: &str) -> Result<Self, SpiffeIdError> {
        if id.is_empty() {
            return Err(SpiffeIdError::Empty);
        }
        if id.len() > MAX_ID_BYTES {
            return Err(SpiffeIdError::TooLong(id.len()));
        }
        let rest = id.strip_prefix(SCHEME).ok_or(SpiffeIdError::WrongScheme)?;
        // Escapes, queries and fragments are named as such wherever they are.
        for (c, error) in [
            ('%', SpiffeIdError::PercentEncoded),
            ('?', SpiffeIdError::Query),
            ('#', SpiffeIdError::Fragment),
        ] {
            if rest.contains(c) {
                return Err(error);
            }
        }
        let (trust_domain, path) = rest.find('/').map_or((rest, ""), |at| rest.split_at(at));
        check_trust_domain(trust_domain)?;
        if path.is_empty() {
            return Err(SpiffeIdError::NoPath);
        }
        check_path(path)?;
        Ok(Self {
            trust_domain: trust_domain.to_string(),
            path: path.to_string(),
        })
    }

    /// The ID of node `peer_id` in `trust_domain`: `spiffe://<td>/node/<peer id>`.
    pub fn for_node(trust_domain: &str, peer_id: &str) -> Result<Self, SpiffeIdError> {
        Self::parse(&format!("{SCHEME}{trust_domain}/node/{peer_id}"))
    }

    /// The trust domain.
    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    /// The path, starting with `/`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The peer id this ID names if it is a node's (`/node/<peer id>`).
    pub fn node_peer_id(&self) -> Option<&str> {
        self.path.strip_prefix("/node/").filter(|peer| !peer.contains('/'))
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME}{}{}", self.trust_domain, self.path)
    }
}

/// Checks a trust domain name on its own (configuration, `ca init`).
pub fn check_trust_domain(trust_domain: &str) -> Result<(), SpiffeIdError> {
    if trust_domain.is_empty() {
        return Err(SpiffeIdError::NoTrustDomain);
    }
    if trust_domain.contains('@') {
        return Err(SpiffeIdError::UserInfo);
    }
    if trust_domain.contains(':') {
        return Err(SpiffeIdError::Port);
    }
    if trust_domain.len() > MAX_TRUST_DOMAIN_BYTES {
        return Err(SpiffeIdError::TrustDomainTooLong(trust_domain.len()));
    }
    match trust_domain
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(*c)))
    {
        Some(c) => Err(SpiffeIdError::TrustDomainChar(c)),
        None => Ok(()),
    }
}

fn check_path(path: &str) -> Result<(), SpiffeIdError> {
    // `path` starts with '/', so the first split part is empty.
    for segment in path.split('/').skip(1) {
        match segment {
            "" => return Err(SpiffeIdError::EmptySegment),
            "." | ".." => return Err(SpiffeIdError::DotSegment),
            _ => {}
        }
        if let Some(c) = segment
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || "._-".contains(*c)))
        {
            return Err(SpiffeIdError::PathChar(c));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_ids_parse_and_show_as_given() {
        for id in [
            "spiffe://example.org/node/12D3KooWabc",
            "spiffe://a-b_c.0/x",
            "spiffe://td/A.b-C_9/..a/a..",
        ] {
            let parsed = SpiffeId::parse(id).unwrap_or_else(|e| panic!("{id}: {e}"));
            assert_eq!(parsed.to_string(), id);
        }
        let node = SpiffeId::for_node("mesh.local", "12D3KooWabc").expect("node id");
        assert_eq!(node.trust_domain(), "mesh.local");
        assert_eq!(node.path(), "/node/12D3KooWabc");
        assert_eq!(node.node_peer_id(), Some("12D3KooWabc"));
        let workload = SpiffeId::parse("spiffe://mesh.local/node/a/b").expect("valid");
        assert_eq!(workload.node_peer_id(), None, "a deeper path names no node");
    }

    #[test]
    fn every_rule_has_its_own_error_and_reason() {
        let long_td = format!("spiffe://{}/x", "a".repeat(256));
        let long_id = format!("spiffe://td/{}", "a".repeat(MAX_ID_BYTES));
        let cases: Vec<(&str, SpiffeIdError)> = vec![
            ("", SpiffeIdError::Empty),
            (&long_id, SpiffeIdError::TooLong(long_id.len())),
            ("https://td/x", SpiffeIdError::WrongScheme),
            ("SPIFFE://td/x", SpiffeIdError::WrongScheme),
            ("spiffe:/td/x", SpiffeIdError::WrongScheme),
            ("spiffe:///x", SpiffeIdError::NoTrustDomain),
            (&long_td, SpiffeIdError::TrustDomainTooLong(256)),
            ("spiffe://user@td/x", SpiffeIdError::UserInfo),
            ("spiffe://td:8443/x", SpiffeIdError::Port),
            ("spiffe://Example.org/x", SpiffeIdError::TrustDomainChar('E')),
            ("spiffe://td!/x", SpiffeIdError::TrustDomainChar('!')),
            ("spiffe://td/a%2Fb", SpiffeIdError::PercentEncoded),
            ("spiffe://td/x?a=b", SpiffeIdError::Query),
            ("spiffe://td/x#frag", SpiffeIdError::Fragment),
            ("spiffe://td/a//b", SpiffeIdError::EmptySegment),
            ("spiffe://td/x/", SpiffeIdError::EmptySegment),
            ("spiffe://td/", SpiffeIdError::EmptySegment),
            ("spiffe://td/./x", SpiffeIdError::DotSegment),
            ("spiffe://td/x/..", SpiffeIdError::DotSegment),
            ("spiffe://td/a b", SpiffeIdError::PathChar(' ')),
            ("spiffe://td/ü", SpiffeIdError::PathChar('ü')),
            ("spiffe://td", SpiffeIdError::NoPath),
        ];
        let mut reasons = std::collections::HashSet::new();
        for (id, expected) in cases {
            let error = SpiffeId::parse(id).expect_err(id);
            assert_eq!(error, expected, "{id}");
            assert!(!error.to_string().is_empty());
            reasons.insert(error.reason());
        }
        assert_eq!(reasons.len(), 15, "each rule is counted under its own reason");
    }

    #[test]
    fn trust_domains_are_checked_on_their_own() {
        assert_eq!(check_trust_domain("mesh.example-1_a"), Ok(()));
        assert_eq!(check_trust_domain(""), Err(SpiffeIdError::NoTrustDomain));
        assert_eq!(check_trust_domain("Mesh"), Err(SpiffeIdError::TrustDomainChar('M')));
        assert!(SpiffeId::for_node("bad domain", "p").is_err());
        assert_eq!(
            SpiffeId::for_node("td", "a/b").map(|id| id.node_peer_id().map(str::to_owned)),
            Ok(None)
        );
    }
}
