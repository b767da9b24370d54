// SPDX-License-Identifier: GPL-2.0 OR MIT
//
// x0tta6bl4 XDP program: counts every packet on the mesh interface by class,
// keeps per-source packet counts (top talkers) and drops packets from
// quarantined source addresses.
//
// Maps (read and written by the `x0tta6bl4-bpf` crate, layouts mirrored there):
//   counters   per-CPU array  class -> {packets, bytes}
//   drops      per-CPU array  reason -> {packets, bytes}
//   blocklist  hash (not LRU: a flood of spoofed sources must never evict a
//              quarantine entry)  source key -> {expires_ns, dropped packets}
//   talkers    LRU hash       source key -> {packets, bytes}

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

// Packet classes. A packet counts once in its network class (IPv4, IPv6 or
// OTHER) and, when it is IP, once more in its transport class (TCP, UDP or
// ICMP/ICMPv6); other transports only count in the network class.
enum packet_class {
	CLASS_IPV4 = 0,
	CLASS_IPV6 = 1,
	CLASS_TCP = 2,
	CLASS_UDP = 3,
	CLASS_ICMP = 4,
	CLASS_OTHER = 5,
	CLASS_COUNT = 6,
};

enum drop_reason {
	DROP_QUARANTINE = 0,
	DROP_REASON_COUNT = 1,
};

#define BLOCKLIST_CAPACITY 4096
#define TALKERS_CAPACITY 4096
// IPv6 extension headers skipped while looking for the transport header.
#define MAX_IPV6_EXT_HEADERS 4

struct counter {
	__u64 packets;
	__u64 bytes;
};

// Source address key: family (4 or 6), three zero bytes, then the address
// (IPv4 in the first four bytes, the rest zero).
struct source_key {
	__u8 family;
	__u8 pad[3];
	__u8 addr[16];
};

struct block_entry {
	__u64 expires_ns; // CLOCK_MONOTONIC (bpf_ktime_get_ns); 0 = never
	__u64 dropped;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, CLASS_COUNT);
	__type(key, __u32);
	__type(value, struct counter);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, DROP_REASON_COUNT);
	__type(key, __u32);
	__type(value, struct counter);
} drops SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, BLOCKLIST_CAPACITY);
	__type(key, struct source_key);
	__type(value, struct block_entry);
} blocklist SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, TALKERS_CAPACITY);
	__type(key, struct source_key);
	__type(value, struct counter);
} talkers SEC(".maps");

static __always_inline void count(void *map, __u32 index, __u64 bytes)
{
	struct counter *c = bpf_map_lookup_elem(map, &index);

	if (c) {
		c->packets += 1;
		c->bytes += bytes;
	}
}

static __always_inline __u32 transport_class(__u8 protocol)
{
	switch (protocol) {
	case IPPROTO_TCP:
		return CLASS_TCP;
	case IPPROTO_UDP:
		return CLASS_UDP;
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6:
		return CLASS_ICMP;
	default:
		return CLASS_COUNT;
	}
}

static __always_inline int is_ipv6_extension(__u8 next)
{
	return next == IPPROTO_HOPOPTS || next == IPPROTO_ROUTING || next == IPPROTO_DSTOPTS ||
	       next == IPPROTO_FRAGMENT;
}

// Follows up to MAX_IPV6_EXT_HEADERS extension headers and returns the
// transport protocol, or IPPROTO_NONE when the chain is longer or truncated.
static __always_inline __u8 ipv6_transport(struct ipv6hdr *ip6, void *data_end)
{
	__u8 next = ip6->nexthdr;
	__u8 *cursor = (__u8 *)(ip6 + 1);

#pragma unroll
	for (int i = 0; i < MAX_IPV6_EXT_HEADERS; i++) {
		if (!is_ipv6_extension(next))
			return next;
		if (cursor + 2 > (__u8 *)data_end)
			return IPPROTO_NONE;
		__u8 header_len = next == IPPROTO_FRAGMENT ? 8 : (cursor[1] + 1) * 8;
		next = cursor[0];
		cursor += header_len;
	}
	return is_ipv6_extension(next) ? IPPROTO_NONE : next;
}

// Drops the packet when its source is on the blocklist and the entry has not
// expired. Returns 1 when the packet must be dropped.
static __always_inline int quarantined(struct source_key *key, __u64 bytes)
{
	struct block_entry *entry = bpf_map_lookup_elem(&blocklist, key);

	if (!entry)
		return 0;
	if (entry->expires_ns && bpf_ktime_get_ns() >= entry->expires_ns)
		return 0;
	__sync_fetch_and_add(&entry->dropped, 1);
	count(&drops, DROP_QUARANTINE, bytes);
	return 1;
}

static __always_inline void count_talker(struct source_key *key, __u64 bytes)
{
	struct counter *c = bpf_map_lookup_elem(&talkers, key);

	if (c) {
		__sync_fetch_and_add(&c->packets, 1);
		__sync_fetch_and_add(&c->bytes, bytes);
		return;
	}
	struct counter fresh = { .packets = 1, .bytes = bytes };
	bpf_map_update_elem(&talkers, key, &fresh, BPF_NOEXIST);
}

SEC("xdp")
int x0tta_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u64 bytes = data_end - data;
	struct ethhdr *eth = data;
	struct source_key key = {};
	__u8 protocol;

	if ((void *)(eth + 1) > data_end) {
		count(&counters, CLASS_OTHER, bytes);
		return XDP_PASS;
	}

	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);

		count(&counters, CLASS_IPV4, bytes);
		if ((void *)(ip + 1) > data_end)
			return XDP_PASS;
		key.family = 4;
		__builtin_memcpy(key.addr, &ip->saddr, 4);
		protocol = ip->protocol;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		count(&counters, CLASS_IPV6, bytes);
		if ((void *)(ip6 + 1) > data_end)
			return XDP_PASS;
		key.family = 6;
		__builtin_memcpy(key.addr, &ip6->saddr, 16);
		protocol = ipv6_transport(ip6, data_end);
	} else {
		count(&counters, CLASS_OTHER, bytes);
		return XDP_PASS;
	}

	__u32 class = transport_class(protocol);
	if (class != CLASS_COUNT)
		count(&counters, class, bytes);
	count_talker(&key, bytes);
	if (quarantined(&key, bytes))
		return XDP_DROP;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
