//! The twin's what-if answers equal networkx's on 200 random graphs of every
//! generator, 10 to 2,000 nodes: links affected, connectivity, largest
//! component, cut-off nodes, articulation points, bridges and the traffic
//! matrix's losses. The seeds are printed; `SIM_ORACLE_SEED=<n>` replays a run.

use petgraph::stable_graph::NodeIndex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use x0tta6bl4_sim::oracle::{self, Case};
use x0tta6bl4_sim::{generate, what_if, Failure, Flow, Net, Shape};

const GRAPHS: usize = 200;

fn random_shape(rng: &mut StdRng) -> Shape {
    let n = rng.gen_range(10..=2_000);
    match rng.gen_range(0..6) {
        0 => Shape::Ring(n),
        1 => Shape::Line(n),
        2 => {
            let w = rng.gen_range(2..=(n as f64).sqrt() as usize + 1);
            Shape::Grid(w, n / w)
        }
        // Mean degree between 2 and 8: sparse enough to have cut points.
        3 => Shape::Geometric(n, (rng.gen_range(2.0..8.0) / (std::f64::consts::PI * n as f64)).sqrt()),
        4 => Shape::BarabasiAlbert(n, rng.gen_range(1..=3)),
        _ => Shape::RingChords(n, n + rng.gen_range(0..n)),
    }
}

fn random_node(net: &Net, rng: &mut StdRng) -> String {
    net.id(NodeIndex::new(rng.gen_range(0..net.len()))).to_owned()
}

fn random_link(net: &Net, rng: &mut StdRng) -> Option<[String; 2]> {
    let graph = net.graph();
    let edges: Vec<_> = graph.edge_indices().collect();
    let edge = *edges.get(rng.gen_range(0..edges.len().max(1)))?;
    let (a, b) = graph.edge_endpoints(edge)?;
    Some([net.id(a).to_owned(), net.id(b).to_owned()])
}

/// One node, one link, a few of both, or one side of a partition (a ball
/// around a node, so that the side is connected as a real partition's is).
fn random_failure(net: &Net, rng: &mut StdRng) -> Failure {
    let mut failure = Failure::default();
    match rng.gen_range(0..4) {
        0 => failure.nodes.push(random_node(net, rng)),
        1 => failure.links.extend(random_link(net, rng)),
        2 => {
            for _ in 0..rng.gen_range(1..=3) {
                failure.nodes.push(random_node(net, rng));
            }
            for _ in 0..rng.gen_range(1..=2) {
                failure.links.extend(random_link(net, rng));
            }
            failure.nodes.sort();
            failure.nodes.dedup();
        }
        _ => {
            let start = NodeIndex::new(rng.gen_range(0..net.len()));
            let size = rng.gen_range(1..=net.len() / 2);
            let mut bfs = petgraph::visit::Bfs::new(net.graph(), start);
            while let Some(node) = bfs.next(net.graph()) {
                if failure.partition.len() == size {
                    break;
                }
                failure.partition.push(net.id(node).to_owned());
            }
        }
    }
    failure
}

/// 100 flows from five sources (each source costs networkx one Dijkstra
/// per graph, and the test its time).
fn random_flows(net: &Net, rng: &mut StdRng) -> Vec<Flow> {
    let sources: Vec<String> = (0..5).map(|_| random_node(net, rng)).collect();
    (0..100)
        .filter_map(|i| {
            let (src, dst) = (sources[i % 5].clone(), random_node(net, rng));
            (src != dst).then_some(Flow { src, dst, rate: 1.0 })
        })
        .collect()
}

#[test]
fn every_what_if_answer_equals_networkx() {
    if !oracle::available() {
        assert!(
            std::env::var("CI").is_err(),
            "networkx is missing under CI: .ci/run must install python3-networkx"
        );
        eprintln!("SKIPPED: python3 cannot import networkx (apt-get install python3-networkx); this test did not run");
        return;
    }
    let master: u64 = std::env::var("SIM_ORACLE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    println!("master seed {master} (SIM_ORACLE_SEED={master} replays this run)");
    let mut rng = StdRng::seed_from_u64(master);
    let (mut questions, mut cases) = (Vec::new(), Vec::new());
    for i in 0..GRAPHS {
        let (shape, seed) = (random_shape(&mut rng), rng.gen::<u64>());
        let net = Net::new(&generate(shape, seed).unwrap_or_else(|e| panic!("case {i}: {shape:?}: {e}")));
        let failure = random_failure(&net, &mut rng);
        let flows = random_flows(&net, &mut rng);
        let ours = what_if(&net, &failure, Some(&flows)).unwrap_or_else(|e| panic!("case {i}: {e}"));
        cases.push(Case::new(&net, &failure, Some(&flows)));
        questions.push((format!("case {i}: {shape:?} seed {seed}"), ours));
    }
    let (version, answers) = oracle::ask(&cases).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(answers.len(), GRAPHS);
    let (mut partitions, mut lengthened, mut lost) = (0, 0, 0);
    for ((label, ours), theirs) in questions.iter().zip(&answers) {
        let ours_json = serde_json::to_value(ours).expect("serializable");
        for (field, expected) in theirs.as_object().expect("an object") {
            match field.as_str() {
                "seconds" => {}
                "traffic" => {
                    for (key, value) in expected.as_object().expect("an object") {
                        assert_eq!(&ours_json["traffic"][key], value, "{label}: traffic.{key}");
                    }
                }
                _ => assert_eq!(&ours_json[field], expected, "{label}: {field}"),
            }
        }
        partitions += usize::from(ours.partitions);
        let traffic = ours.traffic.as_ref().expect("a traffic matrix was given");
        (lengthened, lost) = (lengthened + traffic.lengthened, lost + traffic.lost);
    }
    println!(
        "{GRAPHS} graphs agree with networkx {version}; {partitions} of the failures partition their mesh; \
         {lost} flows lost and {lengthened} lengthened in all"
    );
    assert!(
        partitions > 0 && partitions < GRAPHS && lengthened > 0 && lost > 0,
        "the sample holds partitioning and harmless failures, lost and lengthened flows"
    );
}
