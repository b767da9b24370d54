#!/usr/bin/env python3
"""The networkx side of the twin's oracle test and benchmark.

Reads {"cases": [...]} on stdin, each case {"nodes": [id], "edges": [[a, b, cost]],
"failure": {"nodes": [id], "links": [[a, b]], "partition": [id]}, "flows": [[src, dst]]
or null}; prints {"results": [...]} with what x0tta6bl4-sim's what_if answers,
computed with networkx by the same definitions (sim/src/whatif.rs), and the seconds
each analysis took (graph construction excluded, as on the Rust side).
"""

import json
import sys
import time

import networkx as nx


def pair(a, b):
    return [a, b] if a < b else [b, a]


def analyze(graph, failure, flows):
    failed = set(failure["nodes"])
    side = set(failure["partition"])
    cut = {frozenset(link) for link in failure["links"]}
    for a, b in graph.edges():
        if a in failed or b in failed or ((a in side) != (b in side)):
            cut.add(frozenset((a, b)))
    after = graph.copy()
    after.remove_edges_from(tuple(edge) for edge in cut)
    after.remove_nodes_from(failed)

    before_components = list(nx.connected_components(graph))
    after_components = list(nx.connected_components(after))
    component_before = {n: i for i, c in enumerate(before_components) for n in c}
    component_after = {n: i for i, c in enumerate(after_components) for n in c}
    failed_in = [len(c & failed) for c in before_components]
    cut_off = sorted(
        n
        for n in after.nodes()
        if len(after_components[component_after[n]])
        < len(before_components[component_before[n]]) - failed_in[component_before[n]]
    )

    def pairs(components):
        return sum(len(c) * (len(c) - 1) // 2 for c in components)

    result = {
        "failed_nodes": sorted(failed),
        "links_affected": sorted(pair(*tuple(edge)) for edge in cut),
        "connected_pairs_before": pairs(before_components),
        "connected_pairs_after": pairs(after_components),
        "largest_component_before": max((len(c) for c in before_components), default=0),
        "largest_component_after": max((len(c) for c in after_components), default=0),
        "components_after": len(after_components),
        "cut_off": cut_off,
        "partitions": bool(cut_off),
        "articulation_points_before": sorted(nx.articulation_points(graph)),
        "articulation_points_after": sorted(nx.articulation_points(after)),
        "bridges_before": sorted(pair(a, b) for a, b in nx.bridges(graph)),
        "bridges_after": sorted(pair(a, b) for a, b in nx.bridges(after)),
    }
    if flows is not None:
        result["traffic"] = traffic_loss(graph, after, failed, flows)
    return result


def traffic_loss(graph, after, failed, flows):
    lost = lost_with_failed_end = lengthened = extra_total = extra_max = 0
    by_source = {}
    for src, dst in flows:
        by_source.setdefault(src, []).append(dst)
    for src, dsts in by_source.items():
        before = nx.single_source_dijkstra_path_length(graph, src, weight="cost")
        now = {} if src in failed else nx.single_source_dijkstra_path_length(after, src, weight="cost")
        for dst in dsts:
            if dst not in before:
                continue
            if dst not in now:
                lost += 1
                lost_with_failed_end += int(src in failed or dst in failed)
            elif now[dst] > before[dst]:
                lengthened += 1
                extra_total += now[dst] - before[dst]
                extra_max = max(extra_max, now[dst] - before[dst])
    return {
        "flows": len(flows),
        "lost": lost,
        "lost_with_failed_end": lost_with_failed_end,
        "lengthened": lengthened,
        "extra_cost_total": extra_total,
        "extra_cost_max": extra_max,
    }


def main():
    cases = json.load(sys.stdin)["cases"]
    results = []
    for case in cases:
        graph = nx.Graph()
        graph.add_nodes_from(case["nodes"])
        graph.add_weighted_edges_from(case["edges"], weight="cost")
        started = time.perf_counter()
        result = analyze(graph, case["failure"], case.get("flows"))
        result["seconds"] = time.perf_counter() - started
        results.append(result)
    json.dump({"networkx": nx.__version__, "results": results}, sys.stdout)


if __name__ == "__main__":
    main()
