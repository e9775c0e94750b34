"""Shared pieces of the protocol conformance suite (test_protocol_*.py).

Each test drives one relayd with raw frames, as an upstream peer (a
relaywire.PeerConn that connects to it) and, where the rule is about what
relayd sends downstream, as its next hop (a Downstream that relayd dials).
The relay under test routes:

  s/...   stored here, no next hop
  f/...   forwarded to the next hop "down" (a Downstream), not stored
  ff/...  forwarded to "down" and "down2" (fan-out), not stored
  other   no route and no store: refused with no-route

Every rule of man/relayd-protocol.7 that the suite checks is listed in the
page's CONFORMANCE table with the test that checks it;
test_protocol_index.py keeps the table and the tests in step.
"""

import hashlib
import os
import select
import socket
import time

import pytest

from conftest import HOST, free_port, wait_for
import relaywire as W

DEADLINE = 10.0
MAX_PAYLOAD = 1 << 20


def soon(t=DEADLINE):
    return time.monotonic() + t


class Downstream(W.PeerConn):
    """relayd's next hop: a listener relayd dials, then one connection.

    After accept() it has done the HELLO exchange, granting relayd the
    windows given here.  Connection credit for DATA is returned at once
    unless auto_credit is False; stream credit only when the test says.
    """

    def __init__(self, node="down", conn_window=4 << 20,
                 stream_window=1 << 20, timeout=DEADLINE):
        super().__init__(HOST, 0, node=node, conn_window=conn_window,
                         stream_window=stream_window, timeout=timeout)
        self.port = free_port()
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((HOST, self.port))
        self.lsock.listen(8)
        self.auto_credit = True

    @property
    def address(self):
        return "%s:%d" % (HOST, self.port)

    def accept(self, deadline=None):
        deadline = deadline or soon()
        r, _, _ = select.select([self.lsock], [], [],
                                max(0.0, deadline - time.monotonic()))
        if not r:
            raise W.PeerTimeout("relayd did not dial %s" % self.address)
        self.sock, _ = self.lsock.accept()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.send_raw(W.enc_hello(self.node, self.my_conn_window,
                                  self.my_stream_window))
        f = self.read_frame(deadline)
        if f.type != W.HELLO:
            raise W.WireError(W.EBODY, "expected HELLO, got %r" % f)
        self.peer_hello = f
        self.conn_credit = f.conn_window
        return self

    def _apply(self, f):
        if f.type == W.DATA and not self.auto_credit:
            self.frames_seen.append(f)
            return
        super()._apply(f)

    def expect_put(self, deadline=None):
        return self.expect(lambda f: f.type == W.PUT, deadline, "PUT")

    def read_stream(self, sid, deadline=None):
        """DATA bytes of stream sid up to its END (or ABORT): returns
        (bytes, last frame)."""
        deadline = deadline or soon()
        got = bytearray()
        while True:
            f = self.read_frame(deadline)
            if f.stream != sid:
                continue
            if f.type == W.DATA:
                got += f.data
            elif f.type in (W.END, W.ABORT):
                return bytes(got), f

    def result(self, sid, entries):
        self.send_raw(W.enc_result(sid, entries))

    def close(self):
        super().close()
        self.lsock.close()


def entry(status, depth, node, nbytes, reason=b""):
    return W.Entry(status, depth, node, nbytes, 1, 2, reason)


def relay(make_relay, downs=(), name="r", **opts):
    """The relay under test, started; downs: Downstream objects, the first
    named "down", the second "down2"."""
    names = ["down", "down2"]
    peers = [{"name": names[i], "address": d.address}
             for i, d in enumerate(downs)]
    routes = [{"prefix": "s/", "hops": [], "store": True}]
    if downs:
        routes.append({"prefix": "f/", "hops": ["down"], "store": False})
    if len(downs) > 1:
        routes.append({"prefix": "ff/", "hops": ["down", "down2"],
                       "mode": "fanout", "store": False})
    opts.setdefault("max_payload", MAX_PAYLOAD)
    r = make_relay(name, peers=peers, routes=routes, **opts)
    return r.start()


def upstream(r, **kw):
    return W.PeerConn(HOST, r.port, **kw).connect()


def payload(n, seed=1):
    return (bytes([seed]) * 7 + os.urandom(9)) * (n // 16) + b"z" * (n % 16)


def sha(data):
    return hashlib.sha256(data).digest()


def put_all(peer, key, data, put_id=None, end=True):
    """PUT, all DATA within credit, END; returns the stream id."""
    sid = peer.put(key, data, put_id=put_id)
    peer.send_data(sid, data, deadline=soon())
    if end:
        peer.send_end(sid)
    return sid


def goaway(peer, deadline=None):
    """The GOAWAY relayd sends before it closes, and the close itself.
    Fails the test if the connection goes on or ends without GOAWAY."""
    deadline = deadline or soon()
    g = None
    while True:
        try:
            f = peer.read_frame(deadline)
        except W.PeerClosed:
            assert g is not None, "closed without GOAWAY"
            return g
        except W.PeerTimeout:
            pytest.fail("no GOAWAY and close before the deadline (got %r)"
                        % g)
        if f.type == W.GOAWAY:
            g = f


def alive(peer):
    """The connection still works: a PING gets its PONG."""
    peer.ping(opaque=0x5151, deadline=soon())
    return True


def stream_end(peer, sid, t=DEADLINE):
    return peer.expect_stream_end(sid, deadline=soon(t))


def no_frame_on(peer, sid, t):
    """Nothing for stream sid arrives within t seconds (a PING round trip
    at the end proves relayd has processed everything sent before)."""
    end = time.monotonic() + t
    while time.monotonic() < end:
        try:
            f = peer.read_frame(end)
        except W.PeerTimeout:
            break
        assert f.stream != sid or f.type in (W.CREDIT,), \
            "unexpected %r" % f
    alive(peer)


def stats(r):
    return r.stats()


def wait_stat(r, path, want, t=DEADLINE):
    """Wait until the dotted stats path is >= want."""
    def get():
        v = r.stats()
        for p in path.split("."):
            v = v.get(p, {}) if isinstance(v, dict) else 0
        return v if isinstance(v, int) else 0
    wait_for(lambda: get() >= want, t, "%s >= %d" % (path, want))
