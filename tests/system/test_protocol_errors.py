"""Conformance: the rules of relayd-protocol(7), section Errors.

One test per rule, named after it (the page's CONFORMANCE table lists
them).  Each drives a fresh relay with raw frames and checks the
documented reaction: GOAWAY with code protocol and the close for a
connection error, ABORT on the stream alone for a stream error, silence
for a frame that is ignored.
"""

import os
import struct
import time

import pytest

import relaywire as W
from protoutil import (DEADLINE, Downstream, alive, goaway, no_frame_on, payload,
                       put_all, relay, sha, soon, stream_end, upstream)


@pytest.fixture
def r(make_relay):
    return relay(make_relay)


def test_err_body_too_long(r):
    """A length field above 262144 is refused from the header alone."""
    p = upstream(r)
    p.send_raw(struct.pack(">IBBHI", W.MAX_BODY + 1, W.PING, 0, 0, 0))
    g = goaway(p)
    assert g.code == W.ABORT_PROTOCOL


def test_err_length_out_of_range_before_body(r):
    """A length outside its type's range is refused before the body is
    read: the header alone (a PING of 9 bytes, body never sent) gets
    GOAWAY."""
    p = upstream(r)
    p.send_raw(struct.pack(">IBBHI", 9, W.PING, 0, 0, 0))
    g = goaway(p)
    assert g.code == W.ABORT_PROTOCOL


def test_err_unknown_type(r):
    p = upstream(r)
    p.send_raw(W.raw_frame(11, 0, b""))
    assert goaway(p).code == W.ABORT_PROTOCOL


def test_err_flags_or_reserved(r):
    p = upstream(r)
    p.send_raw(W.raw_frame(W.PING, 0, bytes(8), flags=1))
    assert goaway(p).code == W.ABORT_PROTOCOL
    q = upstream(r)
    q.send_raw(W.raw_frame(W.PING, 0, bytes(8), reserved=1))
    assert goaway(q).code == W.ABORT_PROTOCOL


def test_err_stream_id_not_allowed(r):
    """PING on a stream, and PUT on stream 0."""
    p = upstream(r)
    p.send_raw(W.raw_frame(W.PING, 3, bytes(8)))
    assert goaway(p).code == W.ABORT_PROTOCOL
    q = upstream(r)
    body = W.enc_put(1, os.urandom(16), 4, b"s/k", 1, sha(b"x"))[W.HDR_LEN:]
    q.send_raw(W.raw_frame(W.PUT, 0, body))
    assert goaway(q).code == W.ABORT_PROTOCOL


def test_err_body_disagrees_with_fields(r):
    """A PUT whose key_len does not match its body length."""
    p = upstream(r)
    body = bytearray(W.enc_put(1, os.urandom(16), 4, b"s/key", 1,
                               sha(b"x"))[W.HDR_LEN:])
    body[18:20] = struct.pack(">H", 4)
    p.send_raw(W.raw_frame(W.PUT, 1, bytes(body)))
    assert goaway(p).code == W.ABORT_PROTOCOL


def test_err_first_frame_not_hello(r):
    p = W.PeerConn("127.0.0.1", r.port).open_socket()
    p.send_raw(W.enc_ping(1))
    assert goaway(p).code == W.ABORT_PROTOCOL


def test_err_bad_magic_or_version(r):
    p = W.PeerConn("127.0.0.1", r.port).open_socket()
    p.send_raw(W.enc_hello("v2peer", 1 << 20, 1 << 20, version=2))
    assert goaway(p).code == W.ABORT_PROTOCOL
    q = W.PeerConn("127.0.0.1", r.port).open_socket()
    q.send_raw(W.enc_hello("magic", 1 << 20, 1 << 20).replace(b"RLYD",
                                                              b"RLYX"))
    assert goaway(q).code == W.ABORT_PROTOCOL


def test_err_second_hello(r):
    p = upstream(r)
    p.send_raw(W.enc_hello("again", 1 << 20, 1 << 20))
    assert goaway(p).code == W.ABORT_PROTOCOL


def test_err_node_id_blank(r):
    """A node id is printable ASCII without blanks: "a b" is refused."""
    p = W.PeerConn("127.0.0.1", r.port, node="a b").open_socket()
    p.send_raw(W.enc_hello("a b", 1 << 20, 1 << 20))
    assert goaway(p).code == W.ABORT_PROTOCOL


def test_err_put_on_stream_in_use(r):
    """A PUT on the id of a live stream is a connection error: GOAWAY,
    and the first stream is over too (it gets no RESULT)."""
    p = upstream(r)
    data = payload(1000)
    sid = p.put("s/dup-a", data)
    p.send_raw(W.enc_put(sid, os.urandom(16), 4, b"s/dup-b", 10,
                         sha(b"0123456789")))
    g = goaway(p)
    assert g.code == W.ABORT_PROTOCOL
    assert b"in use" in g.msg
    assert not any(f.type == W.RESULT for f in p.frames_seen)
    assert not os.path.exists(r.stored_path("s/dup-a"))


def test_err_put_on_receivers_parity(r):
    """A PUT on an id of the receiver's parity (even: relayd accepted
    the connection) is a stream error: ABORT protocol on that id, and the
    connection goes on."""
    p = upstream(r)
    p.send_raw(W.enc_put(2, os.urandom(16), 4, b"s/even", 1, sha(b"x")))
    f = p.expect(lambda f: f.type == W.ABORT and f.stream == 2, soon(),
                 "ABORT")
    assert f.code == W.ABORT_PROTOCOL
    assert alive(p)


def test_err_data_never_opened(r):
    """DATA on an id above every PUT of the connection."""
    p = upstream(r)
    p.send_raw(W.enc_data(41, b"x" * 10))
    assert goaway(p).code == W.ABORT_PROTOCOL


def test_err_data_after_abort_dropped(make_relay):
    """DATA that crosses relayd's ABORT is dropped silently and its bytes
    come back as connection credit."""
    # The next hop grants no stream credit: nothing drains, so relayd
    # returns no stream credit either and the overrun is certain.
    d = Downstream(stream_window=0)
    r = relay(make_relay, downs=[d], stream_window=65536)
    p = upstream(r)
    sid = p.open_stream("f/over", 512 << 10, os.urandom(32))
    d.accept()
    credit0 = p.conn_credit
    # Beyond the stream's credit: relayd aborts (code limit)...
    n = p.peer_hello.stream_window + W.MAX_DATA
    sent = 0
    while sent < n:
        k = min(W.MAX_DATA, n - sent)
        p.send_raw(W.enc_data(sid, b"q" * k))
        sent += k
    f = stream_end(p, sid)
    assert f.type == W.ABORT and f.code == W.ABORT_LIMIT
    # ...and the DATA that follows is dropped without a reply.
    for _ in range(4):
        p.send_raw(W.enc_data(sid, b"r" * W.MAX_DATA))
    sent += 4 * W.MAX_DATA
    no_frame_on(p, sid, 0.3)
    deadline = soon()
    while p.conn_credit - (credit0 - sent) < sent * 3 // 4:
        p.wait_credit(deadline)
    assert alive(p)


def test_err_late_frames_ignored(r):
    """END, ABORT, RESULT and CREDIT for a stream that is not open are
    ignored: no reply, and the connection goes on."""
    p = upstream(r)
    sid = put_all(p, "s/late", b"abc")
    assert stream_end(p, sid).type == W.RESULT
    p.send_end(sid)
    p.send_abort(sid)
    p.send_raw(W.enc_result(sid, [W.Entry(1, 0, b"x", 3, 1, 2, b"")]))
    p.send_raw(W.enc_credit(sid, 100))
    no_frame_on(p, sid, 0.3)


def test_err_abort_not_answered(r):
    """An ABORT is never answered with an ABORT."""
    p = upstream(r)
    sid = p.put("s/cancel", b"x" * 100)
    p.send_abort(sid, W.ABORT_CANCELLED, b"changed my mind")
    no_frame_on(p, sid, 0.3)


def test_err_credit_overflow(r):
    """A CREDIT that would raise a window above 2^31-1."""
    p = upstream(r)
    p.send_raw(W.enc_credit(0, 0x7FFFFFFF))
    assert goaway(p).code == W.ABORT_PROTOCOL


def test_err_data_beyond_connection_window(make_relay):
    """DATA longer than what is left of the connection window.  The
    relay grants 65536 and returns credit per quarter taken off the
    wire: after 16383 bytes (no credit back yet) 49153 are left, and a
    DATA of 65536 is beyond them."""
    r = relay(make_relay, conn_window=65536)
    p = upstream(r)
    assert p.conn_credit == 65536
    sid = p.open_stream("s/conn", 1 << 20, os.urandom(32))
    p.send_raw(W.enc_data(sid, b"c" * 16383))
    p.send_raw(W.enc_data(sid, b"c" * 65536))
    g = goaway(p)
    assert g.code == W.ABORT_PROTOCOL
    assert b"connection credit" in g.msg


def test_err_handshake_timeout(make_relay):
    """No HELLO within handshake_timeout: the connection is closed, with
    no GOAWAY (the peer never said it speaks the protocol)."""
    r = relay(make_relay, handshake_timeout=0.5)
    p = W.PeerConn("127.0.0.1", r.port).open_socket()
    t0 = time.monotonic()
    seen = []
    with pytest.raises(W.PeerClosed):
        while True:
            seen.append(p.read_frame(soon()))
    assert time.monotonic() - t0 < 0.5 + 2.5
    assert [f.type for f in seen] == [W.HELLO]
