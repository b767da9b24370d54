//! A soak under chaos: a 20-node namespace mesh (a ring plus random chords)
//! carries steady reliable traffic between four endpoint nodes while random
//! faults hit the other sixteen and the links, one every few seconds: a link
//! cut, a SIGKILL and restart, 30 % loss, a partition that heals. Every node's
//! RSS, open files, threads and sled size are sampled (with default settings
//! everywhere: the endpoints' inboxes are read at every sample, since they keep
//! only the newest 1,024 messages); at the end every reliable message the API
//! accepted must have arrived, and no actor may have restarted (the process
//! restarts are the injected kills).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::netns::{test_net_or_skip, TestNet};
use crate::{inbox_ids, metric, metrics_text, rss_bytes, wait_routes_to, Flow};

const NODES: usize = 20;
const LINKS: usize = 30;
/// Endpoints of the reliable flows (never killed): 0→2, 1→3, 2→0, 3→1.
const ENDPOINTS: usize = 4;
/// Reliable messages per flow and second.
const FLOW_EVERY: Duration = Duration::from_millis(50);
/// How long one fault is held before it is undone.
const HOLD: std::ops::RangeInclusive<u64> = 2_000..=5_000;
/// Pause between faults.
const PAUSE: std::ops::RangeInclusive<u64> = 1_000..=3_000;
/// How often resources are sampled.
const SAMPLE_EVERY: Duration = Duration::from_secs(10);

/// One fault of the chaos schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// A link down, then up.
    LinkCut,
    /// A transit node SIGKILLed, then started again.
    Kill,
    /// 30 % loss on a link, then none.
    Loss,
    /// Three transit nodes cut off from the rest, then reconnected.
    Partition,
}

/// Resource figures of all nodes at one moment.
#[derive(Debug, Clone, Serialize)]
struct Sample {
    minutes: f64,
    pids: Vec<u32>,
    rss_kib: Vec<u64>,
    fds: Vec<u64>,
    threads: Vec<u64>,
    sled_kib: Vec<u64>,
}

/// Growth of one resource: least-squares slopes per minute of each process
/// sampled long enough (see [`growth`]), and the largest value seen.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Growth {
    /// Processes whose slope was measured.
    pub processes: usize,
    /// Largest slope, per minute.
    pub max_slope_per_min: f64,
    /// Median slope, per minute.
    pub median_slope_per_min: f64,
    /// Largest value seen on any node.
    pub max_value: u64,
    /// Processes that ran through the whole second half of the soak.
    pub late_processes: usize,
    /// Their median slope per minute over that half: near zero when the
    /// resource levels off, as caches fill up to their bounds.
    pub late_median_slope_per_min: f64,
}

/// Figures of one soak.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SoakReport {
    /// Seconds of chaos.
    pub seconds: u64,
    /// Faults injected, by kind.
    pub link_cuts: usize,
    /// SIGKILLs (each followed by a restart).
    pub kills: usize,
    /// Loss episodes.
    pub losses: usize,
    /// Partitions (each healed).
    pub partitions: usize,
    /// Reliable messages the API accepted.
    pub reliable_sent: usize,
    /// Of those, not in the destination's inbox at the end.
    pub reliable_lost: usize,
    /// Actor restarts on any node (none was injected).
    pub actor_restarts: u64,
    /// Resident memory, KiB.
    pub rss_kib: Growth,
    /// Open file descriptors.
    pub fds: Growth,
    /// Threads.
    pub threads: Growth,
    /// sled directory size, KiB.
    pub sled_kib: Growth,
    /// Resource samples taken.
    pub samples: usize,
}

/// Runs the soak for `duration` with faults chosen by `seed`, printing
/// progress to stderr. `None` when namespaces are unavailable.
pub fn soak(duration: Duration, seed: u64) -> Option<SoakReport> {
    test_net_or_skip()?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let (mut net, _) = TestNet::random_mesh(NODES, LINKS, &mut rng).expect("namespaces");
    for host in 0..NODES {
        let spec = net.node_spec(host);
        net.start_node(host, spec).expect("node starts");
    }
    let peers: Vec<String> = (0..NODES).map(|h| net.node(h).peer_id.clone()).collect();
    for host in 0..ENDPOINTS {
        let others: Vec<String> = (0..ENDPOINTS)
            .filter(|h| *h != host)
            .map(|h| peers[h].clone())
            .collect();
        wait_routes_to(net.node(host), &others, Duration::from_secs(60));
    }
    let flows: Vec<(usize, Flow)> = (0..ENDPOINTS)
        .map(|from| {
            let to = (from + 2) % ENDPOINTS;
            (to, Flow::reliable(net.node(from), &peers[to], FLOW_EVERY))
        })
        .collect();
    let mut report = SoakReport::default();
    let mut samples = vec![sample(&net, 0.0)];
    let mut arrived: Vec<HashSet<u64>> = vec![HashSet::new(); ENDPOINTS];
    let mut restarts_seen = vec![0_u64; NODES];
    let started = Instant::now();
    let mut next_sample = started + SAMPLE_EVERY;
    while started.elapsed() < duration {
        let fault = *[Fault::LinkCut, Fault::Kill, Fault::Loss, Fault::Partition]
            .choose(&mut rng)
            .unwrap_or(&Fault::LinkCut);
        inject(&mut net, fault, &mut rng, &mut restarts_seen, &mut report);
        std::thread::sleep(Duration::from_millis(rng.gen_range(PAUSE)));
        if Instant::now() >= next_sample {
            next_sample += SAMPLE_EVERY;
            samples.push(sample(&net, started.elapsed().as_secs_f64() / 60.0));
            note_restarts(&net, &mut restarts_seen);
            collect_arrivals(&net, &mut arrived);
            eprintln!(
                "soak {:>4} s: {} cuts, {} kills, {} losses, {} partitions",
                started.elapsed().as_secs(),
                report.link_cuts,
                report.kills,
                report.losses,
                report.partitions
            );
        }
    }
    report.seconds = started.elapsed().as_secs();
    samples.push(sample(&net, started.elapsed().as_secs_f64() / 60.0));
    note_restarts(&net, &mut restarts_seen);
    report.actor_restarts += restarts_seen.iter().sum::<u64>();
    let sent: Vec<(usize, Vec<(u64, u64)>)> = flows.into_iter().map(|(to, flow)| (to, flow.stop())).collect();
    report.reliable_sent = sent.iter().map(|(_, ids)| ids.len()).sum();
    report.reliable_lost = lost_after_waiting(&net, &sent, &mut arrived);
    report.samples = samples.len();
    report.rss_kib = growth(&samples, |s| &s.rss_kib);
    report.fds = growth(&samples, |s| &s.fds);
    report.threads = growth(&samples, |s| &s.threads);
    report.sled_kib = growth(&samples, |s| &s.sled_kib);
    Some(report)
}

/// Injects `fault` on a random target, holds it, undoes it.
fn inject(net: &mut TestNet, fault: Fault, rng: &mut impl Rng, restarts: &mut [u64], report: &mut SoakReport) {
    let hold = Duration::from_millis(rng.gen_range(HOLD));
    let link = rng.gen_range(0..net.links().len());
    let transit: Vec<usize> = (ENDPOINTS..NODES).collect();
    match fault {
        Fault::LinkCut => {
            report.link_cuts += 1;
            let _ = net.set_link(link, false);
            std::thread::sleep(hold);
            let _ = net.set_link(link, true);
        }
        Fault::Loss => {
            report.losses += 1;
            let _ = net.set_loss(link, 30);
            std::thread::sleep(hold);
            let _ = net.set_loss(link, 0);
        }
        Fault::Partition => {
            report.partitions += 1;
            let side: Vec<usize> = transit.choose_multiple(rng, 3).copied().collect();
            let _ = net.partition(&side, true);
            std::thread::sleep(hold);
            let _ = net.partition(&side, false);
        }
        Fault::Kill => {
            report.kills += 1;
            let host = *transit.choose(rng).unwrap_or(&ENDPOINTS);
            // The new process counts from zero: bank what this one counted.
            note_restarts_of(net, host, restarts);
            report.actor_restarts += std::mem::take(&mut restarts[host]);
            let spec = net.node(host).spec().clone();
            net.node_mut(host).kill();
            std::thread::sleep(hold.min(Duration::from_secs(2)));
            net.start_node(host, spec).expect("a killed node starts again");
        }
    }
}

/// Keeps the largest actor restart count `host`'s current process showed.
fn note_restarts_of(net: &TestNet, host: usize, restarts: &mut [u64]) {
    let counted = metric(&metrics_text(net.node(host)), "x0tta_actor_restarts_total", &[]) as u64;
    restarts[host] = restarts[host].max(counted);
}

/// [`note_restarts_of`] for every node.
fn note_restarts(net: &TestNet, restarts: &mut [u64]) {
    for host in 0..NODES {
        note_restarts_of(net, host, restarts);
    }
}

/// Adds the ids in each endpoint's inbox to what arrived there.
fn collect_arrivals(net: &TestNet, arrived: &mut [HashSet<u64>]) {
    for (host, ids) in arrived.iter_mut().enumerate() {
        ids.extend(inbox_ids(net.node(host)));
    }
}

/// Waits up to 30 s for every accepted message to arrive; returns how many did not.
fn lost_after_waiting(net: &TestNet, sent: &[(usize, Vec<(u64, u64)>)], arrived: &mut [HashSet<u64>]) -> usize {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        collect_arrivals(net, arrived);
        let missing: usize = sent
            .iter()
            .map(|(to, ids)| ids.iter().filter(|(id, _)| !arrived[*to].contains(id)).count())
            .sum();
        if missing == 0 || Instant::now() > deadline {
            return missing;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn sample(net: &TestNet, minutes: f64) -> Sample {
    let mut s = Sample {
        minutes,
        pids: Vec::new(),
        rss_kib: Vec::new(),
        fds: Vec::new(),
        threads: Vec::new(),
        sled_kib: Vec::new(),
    };
    for host in 0..NODES {
        let node = net.node(host);
        let pid = node.pid().unwrap_or(0);
        s.pids.push(pid);
        s.rss_kib.push(rss_bytes(pid).unwrap_or(0) / 1024);
        s.fds
            .push(std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64));
        s.threads
            .push(std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |d| d.count() as u64));
        s.sled_kib.push(dir_size(&node.spec().data_dir) / 1024);
    }
    s
}

fn dir_size(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .filter_map(Result::ok)
            .map(|e| match e.metadata() {
                Ok(m) if m.is_dir() => dir_size(&e.path()),
                Ok(m) => m.len(),
                Err(_) => 0,
            })
            .sum()
    })
}

/// Least-squares slopes per process (a node's samples with one pid), over
/// the samples from its second minute on (start-up growth is not a leak);
/// processes sampled over less than half a minute after that are left out.
/// The late slopes are those of the processes that lived through the whole
/// second half of the soak, over that half.
fn growth(samples: &[Sample], of: impl Fn(&Sample) -> &Vec<u64>) -> Growth {
    let half = samples.last().map_or(0.0, |s| s.minutes) / 2.0;
    let mut slopes: Vec<f64> = Vec::new();
    let mut late: Vec<f64> = Vec::new();
    for node in 0..NODES {
        let mut runs: Vec<Vec<&Sample>> = Vec::new();
        for s in samples {
            match runs.last_mut() {
                Some(run) if run[0].pids[node] == s.pids[node] => run.push(s),
                _ => runs.push(vec![s]),
            }
        }
        for run in runs {
            let born = run[0].minutes;
            let settled: Vec<(f64, f64)> = run
                .iter()
                .filter(|s| s.minutes - born >= 1.0)
                .map(|s| (s.minutes, of(s)[node] as f64))
                .collect();
            let span = settled.last().map_or(0.0, |l| l.0) - settled.first().map_or(0.0, |f| f.0);
            if settled.len() >= 3 && span >= 0.5 {
                slopes.push(slope(settled.iter().copied()));
            }
            let second_half: Vec<(f64, f64)> = settled.into_iter().filter(|(m, _)| *m >= half).collect();
            let lived_through =
                born + 1.0 <= half && run.last().map(|s| s.minutes) == samples.last().map(|s| s.minutes);
            if lived_through && second_half.len() >= 3 {
                late.push(slope(second_half.into_iter()));
            }
        }
    }
    slopes.sort_by(f64::total_cmp);
    late.sort_by(f64::total_cmp);
    Growth {
        processes: slopes.len(),
        max_slope_per_min: slopes.last().copied().unwrap_or(0.0),
        median_slope_per_min: slopes.get(slopes.len() / 2).copied().unwrap_or(0.0),
        max_value: samples.iter().flat_map(|s| of(s).iter().copied()).max().unwrap_or(0),
        late_processes: late.len(),
        late_median_slope_per_min: late.get(late.len() / 2).copied().unwrap_or(0.0),
    }
}

/// Least-squares slope of `points` (0 with fewer than two distinct x).
fn slope(points: impl Iterator<Item = (f64, f64)> + Clone) -> f64 {
    let n = points.clone().count() as f64;
    let (sx, sy) = points.clone().fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y));
    let (mx, my) = (sx / n, sy / n);
    let (num, den) = points.fold((0.0, 0.0), |(num, den), (x, y)| {
        (num + (x - mx) * (y - my), den + (x - mx) * (x - mx))
    });
    if den > 0.0 {
        num / den
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::slope;

    #[test]
    fn slope_of_a_line_and_of_too_few_points() {
        let line = [(0.0, 1.0), (1.0, 3.0), (2.0, 5.0)];
        assert!((slope(line.into_iter()) - 2.0).abs() < 1e-9);
        assert_eq!(slope([(1.0, 4.0)].into_iter()), 0.0);
    }
}
