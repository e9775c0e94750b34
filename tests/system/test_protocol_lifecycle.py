"""Conformance: the rules of relayd-protocol(7), section Stream lifecycle.

One test per rule, named after it (the page's CONFORMANCE table lists
them).  relayd is the receiver of streams from a PeerConn, and the sender
of streams to a Downstream it dials.
"""

import os
import time

import pytest

import relaywire as W
from protoutil import (MAX_PAYLOAD, Downstream, alive, entry, no_frame_on,
                       payload, put_all, relay, sha, soon, stream_end,
                       upstream)
from conftest import assert_stored, wait_for


@pytest.fixture
def r(make_relay):
    return relay(make_relay)


def aborted(p, sid, code):
    f = stream_end(p, sid)
    assert f.type == W.ABORT, f
    assert f.code == code, f
    return f


def test_life_refuse_too_large(r):
    """Declared size above max_payload: ABORT too-large at once."""
    p = upstream(r)
    sid = p.open_stream("s/big", MAX_PAYLOAD + 1, os.urandom(32))
    aborted(p, sid, W.ABORT_TOO_LARGE)
    assert alive(p)


def test_life_refuse_loop(r):
    """A put id in flight on this relay: ABORT loop."""
    p = upstream(r)
    pid = os.urandom(16)
    first = p.put("s/loop", b"x" * 100, put_id=pid)
    second = p.put("s/loop2", b"y" * 100, put_id=pid)
    aborted(p, second, W.ABORT_LOOP)
    p.send_data(first, b"x" * 100)
    p.send_end(first)
    assert stream_end(p, first).type == W.RESULT


def test_life_refuse_no_route(r):
    p = upstream(r)
    sid = p.put("nowhere/k", b"x")
    aborted(p, sid, W.ABORT_NO_ROUTE)


def test_life_refuse_key_nul(r):
    """A key may not contain a NUL byte: ABORT protocol."""
    p = upstream(r)
    sid = p.put(b"s/a\x00b", b"x")
    aborted(p, sid, W.ABORT_PROTOCOL)
    assert alive(p)


def test_life_refuse_key_too_long(make_relay):
    """A key whose file name would pass 255 bytes is refused at once with
    ABORT protocol, also by a relay that only forwards it."""
    d = Downstream()
    r = relay(make_relay, downs=[d])
    p = upstream(r)
    sid = p.put(b"f/" + b"k" * 300, b"x")
    f = aborted(p, sid, W.ABORT_PROTOCOL)
    assert b"too long for a file name" in f.msg
    assert alive(p)


def test_life_refuse_shutdown(make_relay):
    """A draining relay sends GOAWAY (shutdown); a PUT after it is
    refused with ABORT shutdown, and a stream in flight still finishes."""
    r = relay(make_relay, drain_timeout=5.0)
    p = upstream(r)
    hold = p.put("s/hold", b"h" * 1000)
    r.terminate()
    g = p.expect(lambda f: f.type == W.GOAWAY, soon(), "GOAWAY")
    assert g.code == W.ABORT_SHUTDOWN
    sid = p.put("s/late", b"x")
    aborted(p, sid, W.ABORT_SHUTDOWN)
    p.send_data(hold, b"h" * 1000)
    p.send_end(hold)
    assert stream_end(p, hold).type == W.RESULT


def test_life_data_without_waiting(r):
    """The sender sends PUT, DATA and END back to back, without waiting
    for any reply: stored."""
    p = upstream(r)
    data = payload(200000)
    sid = put_all(p, "s/pipelined", data)
    f = stream_end(p, sid)
    assert f.type == W.RESULT and f.entries[0].status == W.RES_STORED
    assert_stored(r, "s/pipelined", data)


def test_life_more_than_size(r):
    p = upstream(r)
    sid = p.open_stream("s/long", 10, sha(b"0123456789"))
    p.send_raw(W.enc_data(sid, b"0123456789A"))
    aborted(p, sid, W.ABORT_SIZE)


def test_life_end_before_size(r):
    p = upstream(r)
    sid = p.open_stream("s/short", 10, sha(b"0123456789"))
    p.send_raw(W.enc_data(sid, b"01234"))
    p.send_end(sid)
    aborted(p, sid, W.ABORT_SIZE)


def test_life_one_result_after_end(r):
    """Exactly one RESULT, after END and not before; it ends the stream
    (nothing more on it)."""
    p = upstream(r)
    data = payload(5000)
    sid = put_all(p, "s/one", data, end=False)
    no_frame_on(p, sid, 0.3)
    p.send_end(sid)
    assert stream_end(p, sid).type == W.RESULT
    no_frame_on(p, sid, 0.3)


def test_life_abort_by_sender(r):
    """ABORT from the sender ends the stream: no reply, nothing stored."""
    p = upstream(r)
    sid = p.put("s/gone", b"g" * 100)
    p.send_data(sid, b"g" * 50)
    p.send_abort(sid, W.ABORT_CANCELLED, b"bye")
    no_frame_on(p, sid, 0.3)
    wait_for(lambda: not r.streams(), 5, "the stream to end")
    assert not os.path.exists(r.stored_path("s/gone"))


def test_life_inactivity_upstream(make_relay):
    """An upstream that sends nothing for stream_inactivity_timeout gets
    ABORT timeout, and the next hop gets ABORT timeout too (not
    upstream-lost: the upstream is still there, it is only silent)."""
    d = Downstream()
    r = relay(make_relay, downs=[d], stream_inactivity_timeout=0.5)
    p = upstream(r)
    sid = p.put("f/silent", b"s" * 1000)
    d.accept()
    put = d.expect_put()
    t0 = time.monotonic()
    aborted(p, sid, W.ABORT_TIMEOUT)
    assert time.monotonic() - t0 < 0.5 + 2.5
    _, last = d.read_stream(put.stream)
    assert last.type == W.ABORT and last.code == W.ABORT_TIMEOUT, last


def test_life_inactivity_zero_credit(make_relay):
    """A next hop that grants no credit: relayd, blocked as a sender,
    makes no progress to it and aborts that stream (code timeout) after
    stream_inactivity_timeout; upstream hears of it."""
    d = Downstream(stream_window=0)
    r = relay(make_relay, downs=[d], stream_inactivity_timeout=0.5)
    p = upstream(r)
    data = b"z" * 1000
    sid = put_all(p, "f/stuck", data)
    d.accept()
    put = d.expect_put()
    _, last = d.read_stream(put.stream)
    assert last.type == W.ABORT and last.code == W.ABORT_TIMEOUT, last
    f = stream_end(p, sid)
    assert f.type in (W.RESULT, W.ABORT)
    if f.type == W.RESULT:
        assert all(e.status == W.RES_FAILED for e in f.entries), f


def test_life_result_timeout(make_relay):
    """A next hop that takes every byte and END but never answers gets
    ABORT timeout after result_timeout."""
    d = Downstream()
    r = relay(make_relay, downs=[d], result_timeout=0.5)
    p = upstream(r)
    data = payload(3000)
    put_all(p, "f/mute", data)
    d.accept()
    put = d.expect_put()
    got, last = d.read_stream(put.stream)
    assert got == data and last.type == W.END
    t0 = time.monotonic()
    f = d.expect(lambda f: f.stream == put.stream, soon(), "ABORT")
    assert f.type == W.ABORT and f.code == W.ABORT_TIMEOUT, f
    assert time.monotonic() - t0 < 0.5 + 2.5


def test_life_upstream_lost_before_end(make_relay):
    """The upstream connection fails before END: every downstream stream
    gets ABORT upstream-lost at once."""
    d = Downstream()
    r = relay(make_relay, downs=[d])
    p = upstream(r)
    sid = p.put("f/lost", b"l" * 10000)
    p.send_data(sid, b"l" * 5000)
    d.accept()
    put = d.expect_put()
    p.close()
    _, last = d.read_stream(put.stream)
    assert last.type == W.ABORT and last.code == W.ABORT_UPSTREAM_LOST


def test_life_upstream_lost_after_end(make_relay):
    """The upstream goes away after END: the payload is complete, so the
    relay forwards all of it and END."""
    d = Downstream()
    r = relay(make_relay, downs=[d])
    p = upstream(r)
    data = payload(50000)
    put_all(p, "f/orphan", data)
    p.close()
    d.accept()
    put = d.expect_put()
    got, last = d.read_stream(put.stream)
    assert last.type == W.END and got == data
    d.result(put.stream, [entry(W.RES_STORED, 0, b"down", len(data))])
    wait_for(lambda: not r.streams(), 5, "the stream to end")
