#!/usr/bin/python3
"""Write the hand-made seeds of fuzz_relay into tests/fuzz/corpus/relay.

The input format is fuzz_relay.c's: a first byte whose bit i makes fake
peer i (0, 1 upstream, 2 the next hop) say HELLO at once, then one
operation per byte, (peer << 4) | kind, followed by that kind's fields.
"""
import os
import sys

HELLO, PUT, DATA, END, ABORT, CREDIT, PING, PONG, RESULT, GOAWAY, RAW, \
    LOOP, CLOSE, REOPEN, WARP, DEAF = range(16)
UP0, UP1, HOP = 0, 1, 2


def op(peer, kind, *fields):
    return bytes([peer << 4 | kind]) + bytes(fields)


def put(peer, sel, size, key, idsel=0, seed=0x11):
    # size: index into the size table; key: (k % 4) picks s/f/b/o.
    return op(peer, PUT, sel, size, key, idsel, seed)


def data(peer, sel, n=0):
    return op(peer, DATA, sel, n >> 8, n & 0xff)


def loop(n=15):
    return op(UP0, LOOP, n)


def result(sel, status=0):
    # One entry: status 1 + s % 3, node "hop", the true byte count.
    return op(HOP, RESULT, sel, 1, status, 0)


SEEDS = {
    # HELLO, PUT, DATA, END of 64 KiB with its true SHA-256: stored.
    "put-store": b"\x07" + put(UP0, 0, 3, 0) + data(UP0, 0) +
    op(UP0, END, 0) + loop() + loop(),
    # The same, forwarded to the next hop, which answers "stored".
    "put-forward": b"\x07" + put(UP0, 0, 3, 1) + data(UP0, 0) +
    op(UP0, END, 0) + loop() + result(0) + loop(),
    # Stored here and forwarded, 200000 bytes in four DATA frames, from
    # both upstream peers at once.
    "put-both": b"\x07" + put(UP0, 0, 5, 2) + put(UP1, 1, 5, 6, 0, 7) +
    (data(UP0, 0) + data(UP1, 1) + loop(3)) * 4 + op(UP0, END, 0) +
    op(UP1, END, 1) + loop() + result(0) + result(1) + loop(),
    # CREDIT of 2^31-1, again and again, on the link and on a stream.
    "credit-flood": b"\x07" + put(UP0, 0, 3, 1) + loop(2) +
    op(HOP, CREDIT, 0, 3) * 300 + op(HOP, CREDIT, 1, 0, 3) * 300 +
    op(UP0, CREDIT, 0, 3) * 100 + loop(),
    # PING after PING from a peer that stopped reading.
    "ping-flood": b"\x07" + op(UP0, DEAF) + op(UP0, PING, 1) * 2000 +
    loop(),
    # DATA on streams that were never opened.
    "data-unknown": b"\x07" + data(UP0, 2, 0xffff) * 8 + data(UP1, 3, 1) +
    loop() + put(UP0, 0, 0, 0) + data(UP0, 0, 1) + op(UP0, END, 0) +
    loop(),
    # The next hop answers "stored" before relayd sent END.
    "result-before-end": b"\x07" + put(UP0, 0, 5, 1) + data(UP0, 0) +
    loop() + result(0) + loop() + data(UP0, 0) + data(UP0, 0) +
    data(UP0, 0) + op(UP0, END, 0) + loop(),
    # A PUT that stalls: time passes beyond the inactivity timeout.
    "stall-timeout": b"\x07" + put(UP0, 0, 3, 2) + data(UP0, 0, 100) +
    loop() + op(UP0, WARP, 4) + loop() + op(UP0, WARP, 5) + loop(),
    # Upstream lost half way, then the same PUT id again from the other.
    "upstream-lost": b"\x07" + put(UP0, 0, 4, 2) + data(UP0, 0) + loop() +
    op(UP0, CLOSE, 0) + loop() + put(UP1, 0, 4, 2, 0xc0) + loop(),
    # First windows from many streams towards a next hop that grants
    # nothing beyond its HELLO: 12 x 64 KiB of first windows against a
    # 128 KiB cap.  Before credit was reserved against max_buffered,
    # 364,212 bytes were held.
    "first-windows": b"\x07" + b"".join(
        put(UP0, i, 5, 1 + 4 * i) for i in range(6)) + b"".join(
        put(UP1, i, 5, 1 + 4 * i, 0, 3) for i in range(6)) + b"".join(
        data(UP0, i) + data(UP1, i) for i in range(6)) + loop(),
}



def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "corpus", "relay")
    os.makedirs(out, exist_ok=True)
    for name, seed in SEEDS.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(seed)


if __name__ == "__main__":
    main()
