//! Generated meshes: the shapes the twin is checked and benchmarked on, each
//! reproducible from its seed. Nodes are named `n0`, `n1`, …; links get RTTs
//! between 1 and 20 ms (random geometric graphs: from the distance).

use std::str::FromStr;

use petgraph::graph::UnGraph;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::topology::{Link, Node, Topology, TopologyError, MAX_NODES};

/// A mesh shape and its size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Shape {
    /// `n` nodes in a line.
    Line(usize),
    /// `n` nodes in a ring.
    Ring(usize),
    /// A `w` × `h` grid, each node linked to its right and lower neighbours.
    Grid(usize, usize),
    /// `n` nodes in the unit square, linked when closer than `radius`.
    Geometric(usize, f64),
    /// Barabási–Albert preferential attachment: `n` nodes, `m` links per newcomer.
    BarabasiAlbert(usize, usize),
    /// The namespace tests' random mesh: a ring of `n` plus random chords, `links` in all.
    RingChords(usize, usize),
}

impl Shape {
    /// Nodes the shape has.
    pub fn nodes(&self) -> usize {
        match *self {
            Shape::Line(n)
            | Shape::Ring(n)
            | Shape::Geometric(n, _)
            | Shape::BarabasiAlbert(n, _)
            | Shape::RingChords(n, _) => n,
            Shape::Grid(w, h) => w.saturating_mul(h),
        }
    }
}

/// Why a shape could not be parsed or generated.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ShapeError {
    /// Not one of the known forms.
    #[error("unknown shape {0:?}: line:N, ring:N, grid:WxH, geometric:N:RADIUS, ba:N:M or chords:N:LINKS")]
    Unknown(String),
    /// Parameters out of range.
    #[error("{0}")]
    Invalid(String),
    /// The result is not a valid topology (past the limits).
    #[error(transparent)]
    Topology(#[from] TopologyError),
}

impl FromStr for Shape {
    type Err = ShapeError;

    /// `line:N`, `ring:N`, `grid:WxH`, `geometric:N:RADIUS`, `ba:N:M`, `chords:N:LINKS`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let unknown = || ShapeError::Unknown(text.to_owned());
        let parts: Vec<&str> = text.split(':').collect();
        let int = |s: &str| s.parse::<usize>().map_err(|_| unknown());
        match parts.as_slice() {
            ["line", n] => Ok(Shape::Line(int(n)?)),
            ["ring", n] => Ok(Shape::Ring(int(n)?)),
            ["grid", wh] => {
                let (w, h) = wh.split_once('x').ok_or_else(unknown)?;
                Ok(Shape::Grid(int(w)?, int(h)?))
            }
            ["geometric", n, r] => Ok(Shape::Geometric(int(n)?, r.parse().map_err(|_| unknown())?)),
            ["ba", n, m] => Ok(Shape::BarabasiAlbert(int(n)?, int(m)?)),
            ["chords", n, links] => Ok(Shape::RingChords(int(n)?, int(links)?)),
            _ => Err(unknown()),
        }
    }
}

/// Generates `shape` from `seed`.
pub fn generate(shape: Shape, seed: u64) -> Result<Topology, ShapeError> {
    let n = shape.nodes();
    if n > MAX_NODES {
        return Err(TopologyError::TooManyNodes { count: n }.into());
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let pairs: Vec<(usize, usize, Option<f64>)> = match shape {
        Shape::Line(n) => (1..n).map(|i| (i - 1, i, None)).collect(),
        Shape::Ring(n) => ring(n),
        Shape::Grid(w, h) => grid(w, h),
        Shape::Geometric(n, radius) => geometric(n, radius, &mut rng)?,
        Shape::BarabasiAlbert(n, m) => barabasi_albert(n, m, seed)?,
        Shape::RingChords(n, links) => ring_chords(n, links, &mut rng),
    };
    let nodes = (0..n)
        .map(|i| Node {
            id: node_id(i),
            name: None,
        })
        .collect();
    let links = pairs
        .into_iter()
        .map(|(a, b, rtt)| {
            let rtt_ms = rtt.unwrap_or_else(|| (rng.gen_range(10..200) as f64) / 10.0);
            Link::new(node_id(a), node_id(b), rtt_ms)
        })
        .collect();
    Ok(Topology::new(nodes, links)?)
}

/// The id of generated node `i`.
pub fn node_id(i: usize) -> String {
    format!("n{i}")
}

fn ring(n: usize) -> Vec<(usize, usize, Option<f64>)> {
    match n {
        0 | 1 => Vec::new(),
        2 => vec![(0, 1, None)],
        n => (0..n).map(|i| (i, (i + 1) % n, None)).collect(),
    }
}

fn grid(w: usize, h: usize) -> Vec<(usize, usize, Option<f64>)> {
    let mut pairs = Vec::with_capacity(2 * w * h);
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            if x + 1 < w {
                pairs.push((i, i + 1, None));
            }
            if y + 1 < h {
                pairs.push((i, i + w, None));
            }
        }
    }
    pairs
}

/// Random geometric graph in the unit square. rustworkx-core's compares every
/// pair (O(n²)); this one buckets points into cells of side `radius`, so a
/// point is compared only with its own and the eight neighbouring cells.
fn geometric(n: usize, radius: f64, rng: &mut StdRng) -> Result<Vec<(usize, usize, Option<f64>)>, ShapeError> {
    if !(radius.is_finite() && radius > 0.0 && radius <= 1.5) {
        return Err(ShapeError::Invalid(format!("radius {radius} is not in (0, 1.5]")));
    }
    let points: Vec<(f64, f64)> = (0..n).map(|_| (rng.gen::<f64>(), rng.gen::<f64>())).collect();
    let cells = ((1.0 / radius).floor() as usize).clamp(1, 4_096);
    let cell_of = |v: f64| ((v * cells as f64) as usize).min(cells - 1);
    let mut buckets: Vec<Vec<usize>> = vec![Vec::new(); cells * cells];
    for (i, &(x, y)) in points.iter().enumerate() {
        buckets[cell_of(y) * cells + cell_of(x)].push(i);
    }
    let mut pairs = Vec::new();
    for (i, &(x, y)) in points.iter().enumerate() {
        let (cx, cy) = (cell_of(x), cell_of(y));
        for ny in cy.saturating_sub(1)..=(cy + 1).min(cells - 1) {
            for nx in cx.saturating_sub(1)..=(cx + 1).min(cells - 1) {
                for &j in &buckets[ny * cells + nx] {
                    let d = ((points[j].0 - x).powi(2) + (points[j].1 - y).powi(2)).sqrt();
                    if j > i && d <= radius {
                        // 1 ms plus 0.1 ms per 0.001 of the square's side.
                        pairs.push((i, j, Some(1.0 + (d * 1_000.0).round() / 10.0)));
                    }
                }
            }
        }
    }
    Ok(pairs)
}

/// Barabási–Albert graph from rustworkx-core, grown (as networkx's) from a
/// star of `m + 1` nodes: rustworkx-core's own start, a star of `m` nodes,
/// has no link to attach to when `m` is 1.
fn barabasi_albert(n: usize, m: usize, seed: u64) -> Result<Vec<(usize, usize, Option<f64>)>, ShapeError> {
    if m == 0 || m >= n {
        return Err(ShapeError::Invalid(format!("ba:{n}:{m} needs 1 ≤ m < n")));
    }
    let invalid = |e| ShapeError::Invalid(format!("ba:{n}:{m}: {e:?}"));
    let star: UnGraph<(), ()> =
        rustworkx_core::generators::star_graph(Some(m + 1), None, || (), || (), false, false).map_err(invalid)?;
    let graph: UnGraph<(), ()> =
        rustworkx_core::generators::barabasi_albert_graph(n, m, Some(seed), Some(star), || (), || ())
            .map_err(invalid)?;
    Ok(graph
        .edge_indices()
        .filter_map(|e| graph.edge_endpoints(e))
        .map(|(a, b)| (a.index(), b.index(), None))
        .collect())
}

/// A ring of `n` plus random chords until there are `links` links (at most
/// every pair), as the namespace tests' random meshes are built.
fn ring_chords(n: usize, links: usize, rng: &mut StdRng) -> Vec<(usize, usize, Option<f64>)> {
    let mut pairs: std::collections::BTreeSet<(usize, usize)> =
        ring(n).into_iter().map(|(a, b, _)| (a.min(b), a.max(b))).collect();
    let links = links.min(n * n.saturating_sub(1) / 2);
    while pairs.len() < links {
        let (a, b) = (rng.gen_range(0..n), rng.gen_range(0..n));
        if a != b {
            pairs.insert((a.min(b), a.max(b)));
        }
    }
    pairs.into_iter().map(|(a, b)| (a, b, None)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn degree_sum(t: &Topology) -> usize {
        2 * t.links().len()
    }

    #[test]
    fn shapes_have_the_expected_sizes() {
        let cases = [
            ("line:5", 5, 4),
            ("ring:6", 6, 6),
            ("grid:3x4", 12, 17),
            ("chords:20:30", 20, 30),
        ];
        for (text, nodes, links) in cases {
            let t = generate(text.parse().expect("shape"), 1).expect("generated");
            assert_eq!((t.nodes().len(), t.links().len()), (nodes, links), "{text}");
        }
        let ba = generate("ba:100:2".parse().expect("shape"), 7).expect("generated");
        assert_eq!(ba.nodes().len(), 100);
        assert!(degree_sum(&ba) >= 2 * 2 * 97, "every newcomer brings m links");
    }

    #[test]
    fn the_same_seed_gives_the_same_mesh_and_another_seed_another() {
        for text in ["geometric:300:0.1", "ba:300:3", "chords:30:50"] {
            let shape: Shape = text.parse().expect("shape");
            assert_eq!(generate(shape, 5), generate(shape, 5), "{text}");
            assert_ne!(generate(shape, 5), generate(shape, 6), "{text}");
        }
    }

    #[test]
    fn geometric_links_join_exactly_the_close_pairs() {
        // The buckets find the same pairs as comparing every pair would.
        let (n, radius) = (400, 0.08);
        let bucketed = geometric(n, radius, &mut StdRng::seed_from_u64(3)).expect("generated");
        let mut rng = StdRng::seed_from_u64(3);
        let points: Vec<(f64, f64)> = (0..n).map(|_| (rng.gen::<f64>(), rng.gen::<f64>())).collect();
        let mut brute = Vec::new();
        for i in 0..n {
            for j in i + 1..n {
                if ((points[j].0 - points[i].0).powi(2) + (points[j].1 - points[i].1).powi(2)).sqrt() <= radius {
                    brute.push((i, j));
                }
            }
        }
        let mut found: Vec<(usize, usize)> = bucketed.iter().map(|(a, b, _)| (*a, *b)).collect();
        found.sort_unstable();
        assert!(brute.len() > 1_000, "about n²πr²/2 ≈ 1,600 pairs expected");
        assert_eq!(found, brute);
    }

    #[test]
    fn bad_shapes_are_refused_with_the_reason() {
        assert!(matches!("hex:4".parse::<Shape>(), Err(ShapeError::Unknown(_))));
        assert!(matches!("ring:x".parse::<Shape>(), Err(ShapeError::Unknown(_))));
        assert!(matches!(
            generate(Shape::BarabasiAlbert(5, 5), 1),
            Err(ShapeError::Invalid(_))
        ));
        assert!(matches!(
            generate(Shape::Geometric(5, -1.0), 1),
            Err(ShapeError::Invalid(_))
        ));
        assert_eq!(
            generate(Shape::Ring(10_000_000), 1),
            Err(ShapeError::Topology(TopologyError::TooManyNodes { count: 10_000_000 }))
        );
    }
}
