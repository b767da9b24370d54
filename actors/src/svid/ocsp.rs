//! OCSP for SVIDs that name a responder (`authorityInfoAccess`): after the
//! chain and CRL checks the validator asks [`Ocsp::status`], which answers
//! from a cache kept until each answer's `nextUpdate`. Checks never wait for
//! the network (they run inside TLS handshakes and the mesh's event loop): a
//! certificate not in the cache is queued for [`run_fetcher`] and, until it
//! is answered, follows `svid.ocsp_unreachable`, as does one whose responder
//! cannot be reached: `open` accepts it (the fetcher raises
//! `OCSP_RESPONDER_UNREACHABLE`), `closed` refuses it. Answers are counted in
//! `x0tta_svid_ocsp_answers_total{result}`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use lru::LruCache;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::ocsp_wire::{Answer, CertState, Query, MAX_RESPONSE_BYTES};
use super::validate::Refusal;
use crate::alert::{Alert, Severity, SharedAlertSink};
use crate::buckets::capacity;

const ANSWERS_TOTAL: &str = "x0tta_svid_ocsp_answers_total";
/// Certificates whose answers are kept.
const CACHE: usize = 4_096;
/// How long an answer without a `nextUpdate` is kept.
const HOLD_WITHOUT_NEXT_UPDATE: Duration = Duration::from_secs(60);
/// How long an unreachable responder is not asked again for a certificate.
const RETRY_UNREACHABLE: Duration = Duration::from_secs(5);
/// A query unanswered this long is asked again.
const PENDING_AT_MOST: Duration = Duration::from_secs(10);
/// How long a responder has to answer.
const FETCH_TIMEOUT: Duration = Duration::from_secs(3);
/// Queries waiting for the fetcher; more wait for a later check.
const QUEUE: usize = 256;

/// What a certificate whose responder has not answered gets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnreachablePolicy {
    /// Accepted, with an alert: an outage of the responder does not stop the mesh.
    #[default]
    Open,
    /// Refused until the responder answers.
    Closed,
}

/// What is known of one certificate.
enum Entry {
    /// Asked, no answer yet.
    Pending(Instant),
    /// Answered; holds until then.
    Known(CertState, SystemTime),
    /// The responder could not be asked or gave no usable answer.
    Unreachable(Instant),
}

/// The OCSP answers in force and the queue of questions.
pub struct Ocsp {
    issuers: parking_lot::RwLock<Vec<Vec<u8>>>,
    policy: UnreachablePolicy,
    skew: Duration,
    entries: Mutex<LruCache<(String, String), Entry>>,
    queue: mpsc::Sender<Query>,
    generation: AtomicU64,
}

impl std::fmt::Debug for Ocsp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ocsp")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Ocsp {
    /// OCSP for certificates issued by the CAs in `bundle_pem`, accepting
    /// answers whose times are off by up to `skew`; the receiver goes to
    /// [`run_fetcher`].
    pub fn new(bundle_pem: &str, policy: UnreachablePolicy, skew: Duration) -> (Arc<Self>, mpsc::Receiver<Query>) {
        metrics::describe_counter!(
            ANSWERS_TOTAL,
            "OCSP answers by result (good, revoked, unknown, unreachable)"
        );
        let (queue, queries) = mpsc::channel(QUEUE);
        let ocsp = Self {
            issuers: parking_lot::RwLock::new(certificates(bundle_pem)),
            policy,
            skew,
            entries: Mutex::new(LruCache::new(capacity(CACHE))),
            queue,
            generation: AtomicU64::new(0),
        };
        (Arc::new(ocsp), queries)
    }

    /// The status of `leaf_der` as far as OCSP knows: `Ok` when it names no
    /// responder, is answered good, or is unanswered under the open policy.
    pub fn status(&self, leaf_der: &[u8]) -> Result<(), Refusal> {
        let Some(query) = Query::for_leaf(leaf_der, &self.issuers.read()) else {
            return Ok(());
        };
        let key = (query.url.clone(), query.serial.clone());
        let mut entries = self.entries.lock();
        match entries.get(&key) {
            Some(Entry::Known(state, until)) if *until > SystemTime::now() => {
                return match state {
                    CertState::Good => Ok(()),
                    CertState::Revoked => Err(Refusal::OcspRevoked),
                    CertState::Unknown => Err(Refusal::OcspUnknown),
                };
            }
            Some(Entry::Pending(since)) if since.elapsed() < PENDING_AT_MOST => {
                return self.unanswered(Refusal::OcspPending);
            }
            Some(Entry::Unreachable(since)) if since.elapsed() < RETRY_UNREACHABLE => {
                return self.unanswered(Refusal::OcspUnreachable);
            }
            _ => {}
        }
        entries.put(key, Entry::Pending(Instant::now()));
        drop(entries);
        if self.queue.try_send(query).is_err() {
            tracing::debug!("OCSP queue full; the certificate is asked about at a later check");
        }
        self.unanswered(Refusal::OcspPending)
    }

    /// Asks about certificates of the CAs in `bundle_pem` from now on.
    pub fn set_issuers(&self, bundle_pem: &str) {
        *self.issuers.write() = certificates(bundle_pem);
    }

    /// Changes whenever an answer turns a certificate away: whoever keeps
    /// verdicts checks them again.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn unanswered(&self, refusal: Refusal) -> Result<(), Refusal> {
        match self.policy {
            UnreachablePolicy::Open => Ok(()),
            UnreachablePolicy::Closed => Err(refusal),
        }
    }

    /// Keeps what the responder said of `query`'s certificate.
    fn record(&self, query: &Query, answer: &Result<Answer, String>) {
        let entry = match answer {
            Ok(answer) => {
                let now = SystemTime::now();
                let until = answer.next_update.unwrap_or(now + HOLD_WITHOUT_NEXT_UPDATE);
                Entry::Known(answer.state, until)
            }
            Err(_) => Entry::Unreachable(Instant::now()),
        };
        let turned_away = matches!(entry, Entry::Known(state, _) if state != CertState::Good);
        self.entries
            .lock()
            .put((query.url.clone(), query.serial.clone()), entry);
        if turned_away {
            self.generation.fetch_add(1, Ordering::Release);
        }
    }
}

/// The DER certificates in `bundle_pem`.
fn certificates(bundle_pem: &str) -> Vec<Vec<u8>> {
    x509_parser::pem::Pem::iter_from_buffer(bundle_pem.as_bytes())
        .filter_map(Result::ok)
        .map(|pem| pem.contents)
        .collect()
}

/// Asks responders the queued questions, one at a time, for as long as the
/// node runs; an unreachable responder raises `OCSP_RESPONDER_UNREACHABLE`
/// (resolved when it answers again).
pub async fn run_fetcher(ocsp: Arc<Ocsp>, mut queries: mpsc::Receiver<Query>, alerts: SharedAlertSink) {
    // One request per connection: responders such as `openssl ocsp` serve
    // one connection at a time, and a kept-alive one would hold them.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap_or_default();
    let mut failing = std::collections::HashSet::new();
    while let Some(query) = queries.recv().await {
        let answer = ask(&client, &query)
            .await
            .and_then(|bytes| query.read(&bytes, SystemTime::now(), ocsp.skew));
        let result = match &answer {
            Ok(answer) => match answer.state {
                CertState::Good => "good",
                CertState::Revoked => "revoked",
                CertState::Unknown => "unknown",
            },
            Err(_) => "unreachable",
        };
        metrics::counter!(ANSWERS_TOTAL, "result" => result).increment(1);
        ocsp.record(&query, &answer);
        match answer {
            Ok(_) if failing.remove(&query.url) => {
                tracing::info!(responder = %query.url, "OCSP responder answers again");
                alerts.emit(unreachable_alert(&query.url, "", ocsp.policy).resolved());
            }
            Ok(answer) => tracing::debug!(serial = %query.serial, ?answer, "OCSP answer"),
            Err(error) => {
                tracing::warn!(responder = %query.url, serial = %query.serial, %error, policy = ?ocsp.policy, "no OCSP answer");
                if failing.insert(query.url.clone()) {
                    alerts.emit(unreachable_alert(&query.url, &error, ocsp.policy));
                }
            }
        }
    }
}

/// POSTs `query`'s request to its responder and returns the answer's bytes.
async fn ask(client: &reqwest::Client, query: &Query) -> Result<Vec<u8>, String> {
    let response = client
        .post(&query.url)
        .header("content-type", "application/ocsp-request")
        .header("connection", "close")
        .body(query.request_der()?)
        .timeout(FETCH_TIMEOUT)
        .send()
        .await
        .map_err(|e| format!("cannot reach {}: {e}", query.url))?;
    if !response.status().is_success() {
        return Err(format!("{} answered {}", query.url, response.status()));
    }
    let bytes = response.bytes().await.map_err(|e| e.to_string())?;
    if bytes.len() > MAX_RESPONSE_BYTES {
        return Err(format!("an answer of {} bytes", bytes.len()));
    }
    Ok(bytes.to_vec())
}

fn unreachable_alert(url: &str, error: &str, policy: UnreachablePolicy) -> Alert {
    let outcome = match policy {
        UnreachablePolicy::Open => "accepted meanwhile (svid.ocsp_unreachable = open)",
        UnreachablePolicy::Closed => "refused meanwhile (svid.ocsp_unreachable = closed)",
    };
    Alert::new(
        "OCSP_RESPONDER_UNREACHABLE",
        Severity::Warning,
        format!("the OCSP responder {url} gives no answer ({error}); SVIDs naming it are {outcome}"),
    )
    .label("responder", url)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A certificate naming `url` as responder, issued by a CA made with openssl.
    fn openssl_ca_and_leaf(dir: &std::path::Path, url: &str) -> Option<(String, Vec<u8>)> {
        let run = |args: &[&str]| {
            std::process::Command::new("openssl")
                .args(args)
                .current_dir(dir)
                .output()
                .ok()
                .filter(|o| o.status.success())
        };
        run(&["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key"])?;
        run(&[
            "req",
            "-x509",
            "-new",
            "-key",
            "ca.key",
            "-subj",
            "/CN=mesh.test",
            "-days",
            "1",
            "-out",
            "ca.pem",
        ])?;
        run(&[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            "leaf.key",
        ])?;
        run(&[
            "req", "-new", "-key", "leaf.key", "-subj", "/CN=leaf", "-out", "leaf.csr",
        ])?;
        std::fs::write(
            dir.join("ext.cnf"),
            format!("subjectAltName=URI:spiffe://mesh.test/node/p\nauthorityInfoAccess=OCSP;URI:{url}\n"),
        )
        .ok()?;
        run(&[
            "x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-days", "1", "-extfile",
            "ext.cnf", "-outform", "DER", "-out", "leaf.der",
        ])?;
        Some((
            std::fs::read_to_string(dir.join("ca.pem")).ok()?,
            std::fs::read(dir.join("leaf.der")).ok()?,
        ))
    }

    #[test]
    fn unanswered_certificates_follow_the_policy_and_answers_are_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let Some((bundle, leaf)) = openssl_ca_and_leaf(dir.path(), "http://127.0.0.1:9/") else {
            eprintln!("openssl unavailable: skipped");
            return;
        };
        let (open, mut open_queue) = Ocsp::new(&bundle, UnreachablePolicy::Open, Duration::ZERO);
        let (closed, _closed_queue) = Ocsp::new(&bundle, UnreachablePolicy::Closed, Duration::ZERO);
        assert_eq!(open.status(&leaf), Ok(()), "open: accepted while asked");
        let query = open_queue.try_recv().expect("the question is queued");
        assert_eq!(query.url, "http://127.0.0.1:9/");
        assert_eq!(open.status(&leaf), Ok(()));
        assert!(open_queue.try_recv().is_err(), "asked once while pending");
        assert_eq!(
            closed.status(&leaf),
            Err(Refusal::OcspPending),
            "closed: refused until answered"
        );

        closed.record(&query, &Err("connection refused".into()));
        assert_eq!(closed.status(&leaf), Err(Refusal::OcspUnreachable));
        let before = closed.generation();
        let revoked = Answer {
            state: CertState::Revoked,
            next_update: None,
        };
        open.record(&query, &Ok(revoked));
        closed.record(&query, &Ok(revoked));
        assert_eq!(
            open.status(&leaf),
            Err(Refusal::OcspRevoked),
            "a revocation binds both policies"
        );
        assert_eq!(closed.status(&leaf), Err(Refusal::OcspRevoked));
        assert_ne!(closed.generation(), before, "kept verdicts are checked again");
        let good = Answer {
            state: CertState::Good,
            next_update: Some(SystemTime::now() - Duration::from_secs(1)),
        };
        closed.record(&query, &Ok(good));
        assert_eq!(
            closed.status(&leaf),
            Err(Refusal::OcspPending),
            "an answer past its nextUpdate is asked again"
        );
    }
}
