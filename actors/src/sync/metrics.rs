//! The replication's metrics.

const DELTAS: &str = "x0tta_sync_deltas_total";
const STATE_BYTES: &str = "x0tta_sync_state_bytes";
const LAG: &str = "x0tta_sync_lag_seconds";
const EXCHANGES: &str = "x0tta_sync_exchanges_total";
const COLLECTED: &str = "x0tta_sync_collected_total";

/// Describes them once.
pub fn describe() {
    metrics::describe_counter!(
        DELTAS,
        "Deltas by direction (out: written here and published; in: received) and result (applied, duplicate, buffered, or the reason of refusal)"
    );
    metrics::describe_gauge!(STATE_BYTES, "Bytes of the replicated state (its encoding)");
    metrics::describe_gauge!(
        LAG,
        "Age, when applied here, of the last delta received from another node (its writer's clock to this node's)"
    );
    metrics::describe_counter!(
        EXCHANGES,
        "Anti-entropy exchanges by result (ok, failed) and kind (deltas, full)"
    );
    metrics::describe_counter!(
        COLLECTED,
        "What garbage collection dropped: deltas from the log, deleted keys"
    );
}

/// A delta went `direction` with `result`.
pub fn delta(direction: &'static str, result: &'static str) {
    metrics::counter!(DELTAS, "direction" => direction, "result" => result).increment(1);
}

/// The state's size.
pub fn state_bytes(bytes: usize) {
    metrics::gauge!(STATE_BYTES).set(bytes as f64);
}

/// Age of the last applied delta from another node.
pub fn lag(seconds: f64) {
    metrics::gauge!(LAG).set(seconds);
}

/// An exchange ended.
pub fn exchange(result: &'static str, kind: &'static str) {
    metrics::counter!(EXCHANGES, "result" => result, "kind" => kind).increment(1);
}

/// Garbage collection dropped `count` of `what`.
pub fn collected(what: &'static str, count: usize) {
    metrics::counter!(COLLECTED, "what" => what).increment(count as u64);
}
