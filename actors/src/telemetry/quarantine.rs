//! The quarantine list: sources whose packets the XDP program drops, with TTLs.
//!
//! The list lives in the telemetry actor (and survives its restarts); the XDP
//! blocklist mirrors it and is refilled whenever a program is attached.

use std::{
    collections::BTreeMap,
    net::IpAddr,
    time::{Duration, Instant},
};

use x0tta6bl4_bpf::BLOCKLIST_CAPACITY;

/// One quarantined source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuarantineEntry {
    /// The peer it belongs to, if known.
    pub peer: Option<String>,
    /// Why.
    pub reason: String,
    /// When it is released; `None` for never.
    pub expires: Option<Instant>,
}

impl QuarantineEntry {
    /// Time left before release, `None` for no expiry.
    pub fn remaining(&self, now: Instant) -> Option<Duration> {
        self.expires.map(|at| at.saturating_duration_since(now))
    }
}

/// The list is full.
#[derive(Debug, thiserror::Error)]
#[error("the quarantine list is full ({0} sources)")]
pub struct QuarantineFull(pub usize);

/// Quarantined sources, bounded to the XDP blocklist's capacity.
#[derive(Debug)]
pub struct QuarantineList {
    entries: BTreeMap<IpAddr, QuarantineEntry>,
    capacity: usize,
}

impl Default for QuarantineList {
    fn default() -> Self {
        Self::with_capacity(BLOCKLIST_CAPACITY as usize)
    }
}

impl QuarantineList {
    /// An empty list holding at most `capacity` sources.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            entries: BTreeMap::new(),
            capacity,
        }
    }

    /// Adds or renews a source.
    pub fn insert(&mut self, addr: IpAddr, entry: QuarantineEntry) -> Result<(), QuarantineFull> {
        if !self.entries.contains_key(&addr) && self.entries.len() >= self.capacity {
            return Err(QuarantineFull(self.capacity));
        }
        self.entries.insert(addr, entry);
        Ok(())
    }

    /// Releases a source; `None` if it was not quarantined.
    pub fn remove(&mut self, addr: &IpAddr) -> Option<QuarantineEntry> {
        self.entries.remove(addr)
    }

    /// Removes and returns every source whose time is up.
    pub fn expire(&mut self, now: Instant) -> Vec<IpAddr> {
        let expired: Vec<IpAddr> = self
            .entries
            .iter()
            .filter(|(_, e)| e.expires.is_some_and(|at| at <= now))
            .map(|(addr, _)| *addr)
            .collect();
        for addr in &expired {
            self.entries.remove(addr);
        }
        expired
    }

    /// Every source, in address order.
    pub fn iter(&self) -> impl Iterator<Item = (&IpAddr, &QuarantineEntry)> {
        self.entries.iter()
    }

    /// Number of sources.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is quarantined.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(expires: Option<Instant>) -> QuarantineEntry {
        QuarantineEntry {
            peer: None,
            reason: "test".into(),
            expires,
        }
    }

    fn addr(last: u8) -> IpAddr {
        IpAddr::from([10, 77, 0, last])
    }

    #[test]
    fn expiry_releases_only_what_is_due() {
        let now = Instant::now();
        let mut list = QuarantineList::default();
        list.insert(addr(1), entry(Some(now))).expect("room");
        list.insert(addr(2), entry(Some(now + Duration::from_secs(60))))
            .expect("room");
        list.insert(addr(3), entry(None)).expect("room");
        assert_eq!(list.expire(now), vec![addr(1)]);
        assert_eq!(list.len(), 2);
        assert!(list.expire(now + Duration::from_secs(3600)).contains(&addr(2)));
        assert_eq!(list.len(), 1, "an entry without expiry stays");
    }

    #[test]
    fn a_full_list_refuses_new_sources_but_renews_old_ones() {
        let mut list = QuarantineList::with_capacity(2);
        list.insert(addr(1), entry(None)).expect("room");
        list.insert(addr(2), entry(None)).expect("room");
        assert!(list.insert(addr(3), entry(None)).is_err());
        list.insert(addr(1), entry(Some(Instant::now())))
            .expect("renewal needs no room");
        assert_eq!(list.len(), 2);
    }
}
