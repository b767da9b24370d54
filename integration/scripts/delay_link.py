#!/usr/bin/env python3
"""A slow link for test networks: bridges two interfaces, delaying every frame.

This kernel has no netem, so a link with delay is a relay namespace between two
hosts: frames read from one interface (AF_PACKET) are written to the other after
DELAY_MS. Usage: delay_link.py IFACE_A IFACE_B DELAY_MS. Runs until killed.
"""
import heapq
import select
import socket
import sys
import time

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4


def open_raw(iface):
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.bind((iface, 0))
    sock.setblocking(False)
    return sock


def main():
    iface_a, iface_b, delay_ms = sys.argv[1], sys.argv[2], float(sys.argv[3])
    a, b = open_raw(iface_a), open_raw(iface_b)
    other = {a: b, b: a}
    queue = []  # (due, sequence, socket, frame)
    sequence = 0
    while True:
        timeout = max(0.0, queue[0][0] - time.monotonic()) if queue else 1.0
        ready, _, _ = select.select([a, b], [], [], timeout)
        for sock in ready:
            while True:
                try:
                    frame, addr = sock.recvfrom(65535)
                except BlockingIOError:
                    break
                if addr[2] == PACKET_OUTGOING:
                    continue
                sequence += 1
                heapq.heappush(queue, (time.monotonic() + delay_ms / 1000.0, sequence, other[sock], frame))
        now = time.monotonic()
        while queue and queue[0][0] <= now:
            _, _, out, frame = heapq.heappop(queue)
            try:
                out.send(frame)
            except OSError:
                pass


if __name__ == "__main__":
    main()
