//! Metrics of end-to-end sessions.

use std::time::Duration;

use x0tta6bl4_pqc::{Reject, Suite};

const HANDSHAKES: &str = "x0tta_pqc_handshakes_total";
const DURATION: &str = "x0tta_pqc_handshake_duration_seconds";
const FALLBACKS: &str = "x0tta_pqc_fallbacks_total";
const FRAMES_REJECTED: &str = "x0tta_pqc_frames_rejected_total";
const SESSIONS: &str = "x0tta_pqc_sessions";
const BINDINGS_REJECTED: &str = "x0tta_pqc_bindings_rejected_total";
const CAPABILITIES: &str = "x0tta_pqc_capabilities_sent_total";
const EXPIRED: &str = "x0tta_pqc_sessions_expired_total";

/// Registers help texts.
pub fn describe() {
    metrics::describe_counter!(
        HANDSHAKES,
        "Handshakes by result: the suite when established, else the refusal reason"
    );
    metrics::describe_histogram!(DURATION, "Initiator's time from Init to established session");
    metrics::describe_counter!(
        FALLBACKS,
        "Sessions that fell back to X25519 alone under pqc.mode=preferred"
    );
    metrics::describe_counter!(FRAMES_REJECTED, "Sealed or unsealed frames refused, by reason");
    metrics::describe_gauge!(SESSIONS, "Established end-to-end sessions kept");
    metrics::describe_counter!(
        BINDINGS_REJECTED,
        "Key bindings refused, by reason (bad_binding: does not verify; stale_binding: older than the newest seen)"
    );
    metrics::describe_counter!(
        CAPABILITIES,
        "Inits answered with this node's key binding (the initiator asked, or used an old one)"
    );
    metrics::describe_counter!(
        EXPIRED,
        "Sessions dropped at their hard lifetime (three rekey intervals) without a new handshake"
    );
}

pub(super) fn established(suite: Suite) {
    metrics::counter!(HANDSHAKES, "result" => suite.label()).increment(1);
}

pub(super) fn handshake_refused(reason: &Reject) {
    metrics::counter!(HANDSHAKES, "result" => reason.label()).increment(1);
}

pub(super) fn duration(elapsed: Duration) {
    metrics::histogram!(DURATION).record(elapsed.as_secs_f64());
}

pub(super) fn fallback() {
    metrics::counter!(FALLBACKS).increment(1);
}

pub(super) fn frame_rejected(reason: &'static str) {
    metrics::counter!(FRAMES_REJECTED, "reason" => reason).increment(1);
}

pub(super) fn sessions(count: usize) {
    metrics::gauge!(SESSIONS).set(count as f64);
}

pub(super) fn binding_rejected(reason: &Reject) {
    metrics::counter!(BINDINGS_REJECTED, "reason" => reason.label()).increment(1);
}

pub(super) fn capability_sent() {
    metrics::counter!(CAPABILITIES).increment(1);
}

pub(super) fn session_expired() {
    metrics::counter!(EXPIRED).increment(1);
}
