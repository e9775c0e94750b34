"""A hostile peer is bounded like a slow one: memory (DESIGN.md invariant 8).

One test per attack of issue 13 on relayd's memory, each with a real
measurement (VmRSS of the relay from /proc, `relayctl -j show stats`,
/proc/PID/io read calls, the log) and, during or right after the attack, a
legitimate `relayctl put` from another client that must store byte-exact:

- test_output_never_drained: a peer that never reads and sends PING (or
  PUTs that relayd refuses) as fast as it can.  relayd folds PONGs (one
  queued at a time), stops reading the link once its output passes
  max_output_buffer, and closes a link whose output makes no progress for
  output_timeout.  RSS growth stays within the bound plus a margin.
- test_first_windows_reserved: many links open streams towards a next hop
  that grants no credit and fill their first stream windows.  Every window
  is reserved against max_buffered before it is granted, so streams beyond
  the cap are refused (ABORT limit) and buffered + reserved never exceeds
  max_buffered.
- test_credit_overflow_closes_link, test_stream_credit_overflow_closes_link:
  CREDIT that would raise the connection window (from a peer that
  connected) or a stream's window (from a next hop relayd dialled) above
  2^31-1 is a protocol error: GOAWAY protocol, link closed, counted.
- test_data_never_opened_closes_link: DATA on a stream id no PUT opened is
  a protocol error for the link.
- test_data_after_abort_discarded_cheaply: 16 MiB of DATA on a stream that
  relayd aborted is dropped in large reads (a bound on read syscalls from
  /proc/PID/io), its connection credit comes back, and a PUT on the same
  link afterwards is stored.
"""

import os
import re
import select
import socket
import threading
import time

import pytest

from conftest import (HOST, assert_stored, free_port, proc_value, put,
                      put_bg, rss, sanitized, wait_for)
import relaywire as W

K = 1 << 10
M = 1 << 20


def read_calls(pid):
    """Read syscalls (read, readv, recv...) made by pid so far."""
    return proc_value(pid, "io", "syscr:")


def memory(relay):
    return relay.stats()["memory"]


def legit_put(relay, key, size=1 * M):
    data = os.urandom(size)
    t0 = time.monotonic()
    rc, js = put(relay, key, data, timeout=60)
    took = time.monotonic() - t0
    assert rc == 0, js
    assert_stored(relay, key, data)
    return took


def hello_only(relay, node="attacker"):
    """A raw socket that did HELLO and read the relay's HELLO."""
    peer = W.PeerConn(HOST, relay.port, node=node).connect()
    return peer


def read_until(peer, types, deadline):
    """The first frame of one of types, or "closed" on EOF/reset."""
    while True:
        try:
            f = peer.read_frame(deadline)
        except W.PeerClosed:
            return "closed"
        if f.type in types:
            return f


# ------------------------------------------------- 1: output never drained

FLOOD_SECS = 6.0
OUT_BOUND = 2 * M
OUT_TIMEOUT = 2.0
IDLE = 1.0
# How relayd ends a link that never reads: its output made no progress
# for output_timeout (over the bound, or a PONG that cannot leave), or,
# when its own output is empty because the peer's TCP wedged (the
# attacker's full receive buffer stops the ACKs its own data needs),
# the keepalive: no answer to PING within 2 x idle_timeout.
CLOSED_RX = re.compile(r"output not drained within output_timeout|"
                       r"no answer to keepalive PING")


def flood_blob(kind):
    """4096 frames that each make the relay answer: PINGs (answered with
    PONG), or PUTs on ids of the relay's own parity (even: it accepted the
    link), answered with ABORT protocol and never admitted."""
    if kind == "ping":
        return b"".join(W.enc_ping(i) for i in range(4096))
    return b"".join(W.enc_put(2 * (i + 1), bytes(16), 1, b"k", 1, bytes(32))
                    for i in range(4096))


def flood(peer, blob, stop, sent):
    """Send blob over and over, never reading, until stop is set, the
    flood time is over, or the relay closes the link."""
    sock = peer.sock
    sock.setblocking(False)
    end = time.monotonic() + FLOOD_SECS + OUT_TIMEOUT
    while not stop.is_set() and time.monotonic() < end:
        _, w, _ = select.select([], [sock], [], 0.2)
        if not w:
            continue
        try:
            sent[0] += sock.send(blob)
        except BlockingIOError:
            continue
        except OSError:
            sent[1] = True      # closed by the relay
            return


@pytest.mark.parametrize("kind", ["ping", "refused_put"])
def test_output_never_drained(make_relay, kind):
    relay = make_relay("flooded", store=True, max_output_buffer=OUT_BOUND,
                       output_timeout=OUT_TIMEOUT,
                       idle_timeout=IDLE if kind == "ping" else 30.0)
    relay.start()
    pid = relay.proc.pid
    asan = sanitized(pid)
    base = rss(pid)
    peer = hello_only(relay)
    # Never read: keep the kernel's receive buffer small so it fills fast.
    peer.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stop = threading.Event()
    sent = [0, False]
    peak = [base]
    t = threading.Thread(target=flood,
                         args=(peer, flood_blob(kind), stop, sent))
    t0 = time.monotonic()
    t.start()
    wait_for(lambda: sent[0] > 0, 5, "the flood to start")
    try:
        # A legitimate PUT from another client while the flood runs.
        took = legit_put(relay, "good/during-%s-flood" % kind)

        def closed():
            peak[0] = max(peak[0], rss(pid))
            if not asan and peak[0] - base > 128 * M:
                return "runaway"    # stop early: the asserts below fail
            return CLOSED_RX.search(relay.log_text())
        # The flood ends by FLOOD_SECS + OUT_TIMEOUT at the latest; a
        # link that then answers no PING is gone 2 x IDLE later.
        wait_for(closed, FLOOD_SECS + OUT_TIMEOUT + 2 * IDLE + 2.0,
                 "the relay to close the link that never reads")
        closed_at = time.monotonic()
    finally:
        stop.set()
        t.join(10)
    peer.close()
    growth = peak[0] - base
    print("%s flood: %d bytes sent, RSS growth %.1f MiB, closed after "
          "%.2fs, legit put %.2fs" % (kind, sent[0], growth / M,
                                      closed_at - t0, took))
    if not asan:
        # The output bound, one read's worth of input, and slack for the
        # allocator and the legitimate PUT's buffers.
        assert growth <= OUT_BOUND + 16 * M, growth
    mem = memory(relay)
    if kind == "ping":
        # PONGs are folded: the output never even reaches the bound.
        assert mem["pongs_folded"] > 0, mem
        assert mem["output_paused"] == 0, mem
        assert closed_at - t0 <= FLOOD_SECS + OUT_TIMEOUT + 2 * IDLE + 2.0
    else:
        # Over the bound: reading stops, the link is closed after
        # output_timeout (filling the kernel's buffers takes well under a
        # second here).
        assert mem["output_paused"] >= 1 and mem["output_closed"] == 1, mem
        assert "output not read" in relay.log_text()
        assert "output not drained within output_timeout" in \
            relay.log_text()
        assert closed_at - t0 <= OUT_TIMEOUT + 4.0
    legit_put(relay, "good/after-%s-flood" % kind)


# ------------------------------------------------ 2: first windows reserved

MAX_BUFFERED = 8 * M
WINDOW = 1 * M
LINKS = 6
STREAMS = 4


class SilentHop:
    """A next hop that answers HELLO with zero windows, grants no credit
    ever, and reads (and drops) whatever comes."""

    def __init__(self, node):
        self.node = node
        self.port = free_port()
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((HOST, self.port))
        self.lsock.listen(16)
        self.stop = threading.Event()
        self.conns = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        self.lsock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                c, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            c.sendall(W.enc_hello(self.node, 0, 0))
            c.setblocking(False)
            self.conns.append(c)
            threading.Thread(target=self._drain, args=(c,),
                             daemon=True).start()

    def _drain(self, c):
        while not self.stop.is_set():
            r, _, _ = select.select([c], [], [], 0.2)
            if not r:
                continue
            try:
                if not c.recv(1 << 16):
                    return
            except BlockingIOError:
                continue
            except OSError:
                return

    def close(self):
        self.stop.set()
        self.lsock.close()
        for c in self.conns:
            c.close()


def test_first_windows_reserved(make_relay):
    sink = SilentHop("sink")
    relay = make_relay(
        "capped", max_buffered=MAX_BUFFERED, stream_window=WINDOW,
        conn_window=STREAMS * WINDOW, stream_inactivity_timeout=60.0,
        peers=[{"name": "sink", "address": "%s:%d" % (HOST, sink.port)}],
        routes=[{"prefix": "evil/", "hops": ["sink"], "store": False},
                {"prefix": "", "hops": [], "store": True}])
    try:
        relay.start()
        pid = relay.proc.pid
        asan = sanitized(pid)
        base = rss(pid)
        bg = put_bg(relay, "good/during-window-flood", b"")  # warms up
        assert bg.finish(30)[0] == 0
        peers, sids = [], []
        block = os.urandom(WINDOW)
        for i in range(LINKS):
            p = W.PeerConn(HOST, relay.port, node="att%d" % i).connect()
            peers.append(p)
            for j in range(STREAMS):
                sid = p.open_stream("evil/%d/%d" % (i, j), 2 * WINDOW,
                                    bytes(32))
                # The whole first window, without waiting for a reply.
                assert p.send_some(sid, block) == WINDOW
                sids.append((p, sid))
        data = os.urandom(2 * M)
        bg = put_bg(relay, "good/during-window-flood", data)
        # Which streams did the relay refuse?  (A refusal comes at once.)
        refused = 0
        for p in peers:
            deadline = time.monotonic() + 0.5
            while True:
                try:
                    f = p.read_frame(deadline)
                except W.PeerTimeout:
                    break
                if f.type == W.ABORT:
                    assert f.code == W.ABORT_LIMIT, f
                    refused += 1
        admitted = len(sids) - refused
        wait_for(lambda: relay.stats()["buffered"] >= admitted * WINDOW,
                 15, "the admitted streams' first windows to arrive")
        st = relay.stats()
        mem = st["memory"]
        peak = rss(pid)
        rc, js = bg.finish(60)
        assert rc == 0, js
        assert_stored(relay, "good/during-window-flood", data)
        print("window flood: %d streams, %d admitted, buffered %.1f MiB, "
              "reserved %.1f MiB, RSS growth %.1f MiB" % (
                  len(sids), admitted, st["buffered"] / M,
                  mem["reserved"] / M, (peak - base) / M))
        assert st["buffered"] <= MAX_BUFFERED, st
        assert st["buffered"] + mem["reserved"] <= MAX_BUFFERED, mem
        assert admitted * WINDOW <= MAX_BUFFERED
        assert refused > 0 and mem["reserve_refused"] == refused, mem
        assert "put refused: max_buffered reached" in relay.log_text()
        if not asan:
            # max_buffered, the links' output and input, allocator slack.
            assert peak - base <= MAX_BUFFERED + 24 * M, peak - base
        for p in peers:
            p.close()
        # Reservations come back when the streams go.
        wait_for(lambda: memory(relay)["reserved"] == 0 and
                 relay.stats()["buffered"] == 0, 15,
                 "reservations and buffers to be released")
        legit_put(relay, "good/after-window-flood")
    finally:
        sink.close()


# --------------------------------------------------- 3: CREDIT overflow

def test_credit_overflow_closes_link(make_relay):
    relay = make_relay("credited", store=True)
    relay.start()
    peer = hello_only(relay)
    frame = W.enc_credit(0, 0x7FFFFFFF)
    out = None
    deadline = time.monotonic() + 10
    # The 16,384 increments of 2^31-1, one at a time, each given
    # time for an answer (a frame sent after the relay closed would reset
    # the link and lose its GOAWAY).  The first already overflows: the
    # window starts at conn_window.
    sends = 0
    for i in range(16384):
        try:
            peer.send_raw(frame)
            sends += 1
        except OSError:
            out = "closed"
            break
        r, _, _ = select.select([peer.sock], [], [], 0.5)
        if r or time.monotonic() > deadline:
            break
    if out is None:
        out = read_until(peer, (W.GOAWAY,), deadline)
    assert out != "closed", "closed without GOAWAY"
    assert out.code == W.ABORT_PROTOCOL, out
    assert b"CREDIT" in out.msg, out
    assert read_until(peer, (), time.monotonic() + 5) == "closed"
    peer.close()
    assert sends == 1
    mem = memory(relay)
    assert mem["credit_overflow"] == 1, mem
    assert "protocol error: CREDIT of 2147483647 on stream 0" in \
        relay.log_text()
    legit_put(relay, "good/after-credit-overflow")


class CreditBomber(SilentHop):
    """A next hop that grants normal windows, then answers the first PUT
    it gets with CREDIT 2^31-1 on that stream (its window is already
    stream_window: the sum overflows), and records what comes back."""

    def __init__(self, node):
        self.frames = []
        super().__init__(node)

    def _run(self):
        self.lsock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                c, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.conns.append(c)
            c.sendall(W.enc_hello(self.node, 4 * M, 1 * M))
            threading.Thread(target=self._serve, args=(c,),
                             daemon=True).start()

    def _serve(self, c):
        buf = bytearray()
        c.settimeout(0.2)
        while not self.stop.is_set():
            try:
                chunk = c.recv(1 << 16)
            except socket.timeout:
                continue
            except OSError:
                return
            if not chunk:
                self.frames.append("closed")
                return
            buf += chunk
            while True:
                r = W.decode(buf)
                if r is None:
                    break
                n, f = r
                del buf[:n]
                self.frames.append(f)
                if f.type == W.PUT:
                    c.sendall(W.enc_credit(f.stream, 0x7FFFFFFF))


def test_stream_credit_overflow_closes_link(make_relay):
    hop = CreditBomber("bomber")
    relay = make_relay(
        "sender", peers=[{"name": "bomber",
                          "address": "%s:%d" % (HOST, hop.port)}],
        routes=[{"prefix": "evil/", "hops": ["bomber"], "store": False},
                {"prefix": "", "hops": [], "store": True}])
    try:
        relay.start()
        rc, js = put(relay, "evil/overflow", os.urandom(64 * K), timeout=30)
        assert rc != 0, js          # its only branch failed
        wait_for(lambda: "closed" in hop.frames, 10,
                 "the relay to close the link to the next hop")
        goaway = [f for f in hop.frames if f != "closed" and
                  f.type == W.GOAWAY]
        assert goaway and goaway[0].code == W.ABORT_PROTOCOL, hop.frames
        assert memory(relay)["credit_overflow"] == 1
        assert "protocol error: CREDIT of 2147483647 on stream 1" in \
            relay.log_text()
        legit_put(relay, "good/after-stream-credit-overflow")
    finally:
        hop.close()


# ------------------------------------------- 4: DATA for unknown streams

def test_data_never_opened_closes_link(make_relay):
    relay = make_relay("strict", store=True)
    relay.start()
    peer = hello_only(relay)
    sid = peer.put("good/opened", b"x" * 10)     # id 1 is opened ...
    peer.send_raw(W.enc_data(99, b"y" * 1000))   # ... 99 never was
    out = read_until(peer, (W.GOAWAY,), time.monotonic() + 10)
    assert out != "closed", "closed without GOAWAY"
    assert out.code == W.ABORT_PROTOCOL, out
    assert b"never opened" in out.msg, out
    assert read_until(peer, (), time.monotonic() + 5) == "closed"
    peer.close()
    assert sid == 1
    assert memory(relay)["data_never_opened"] == 1
    legit_put(relay, "good/after-never-opened")


DISCARD = 16 * M
MAX_READS = 2000


def send_conn_limited(peer, sid, total, deadline):
    """DATA on sid for total bytes, ignoring the (gone) stream's window
    but keeping to connection credit, which the relay must return."""
    chunk = b"z" * W.MAX_DATA
    sent = 0
    while sent < total:
        n = min(W.MAX_DATA, total - sent, peer.conn_credit)
        if n <= 0:
            peer.wait_credit(deadline)
            continue
        peer.send_raw(W.enc_data_hdr(sid, n) + chunk[:n])
        peer.conn_credit -= n
        sent += n


def test_data_after_abort_discarded_cheaply(make_relay):
    relay = make_relay("discard", store=True)
    relay.start()
    pid = relay.proc.pid
    peer = hello_only(relay)
    # A PUT that declares 1 KiB, then sends more: relayd aborts it (size).
    sid = peer.open_stream("bad/oversent", 1 * K, bytes(32))
    peer.send_raw(W.enc_data(sid, b"a" * (2 * K)))
    f = peer.expect(lambda f: f.stream == sid and f.type == W.ABORT,
                    deadline=time.monotonic() + 10)
    assert f.code == W.ABORT_SIZE, f
    bg = put_bg(relay, "good/during-discard", os.urandom(1 * M))
    before = read_calls(pid)
    t0 = time.monotonic()
    send_conn_limited(peer, sid, DISCARD, time.monotonic() + 60)
    # All of it was taken off the wire: connection credit came back in
    # full (the relay credits each quarter of conn_window it reads).
    cw = peer.peer_hello.conn_window
    wait_for(lambda: (peer.wait_credit(time.monotonic() + 1) or True) and
             peer.conn_credit >= cw - cw // 4, 15,
             "connection credit for the discarded DATA to come back")
    took = time.monotonic() - t0
    reads = read_calls(pid) - before
    rc, js = bg.finish(60)
    assert rc == 0, js
    mem = memory(relay)
    print("discard: %d MiB in %.2fs with %d read calls (%.0f per MiB)" % (
        DISCARD // M, took, reads, reads / (DISCARD / M)))
    assert reads < MAX_READS, reads
    assert mem["data_discarded"] >= DISCARD, mem
    # The link is not stuck: a PUT on it afterwards is stored.
    data = os.urandom(300 * K)
    sid2 = peer.put("good/same-link", data)
    peer.send_data(sid2, data, deadline=time.monotonic() + 20)
    peer.send_end(sid2)
    f = peer.expect_stream_end(sid2, deadline=time.monotonic() + 20)
    assert f.type == W.RESULT, f
    assert f.entries[0].status == W.RES_STORED, f
    assert_stored(relay, "good/same-link", data)
    peer.close()
    legit_put(relay, "good/after-discard")
