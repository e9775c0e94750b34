"""Conformance: the rules of relayd-protocol(7), section Results.

One test per rule, named after it (the page's CONFORMANCE table lists
them).  relayd forwards a stream from a PeerConn to a Downstream that
answers with the RESULT the rule needs; the test reads the RESULT relayd
sends upstream.
"""

import os

import pytest

import relaywire as W
from protoutil import (Downstream, alive, entry, no_frame_on, payload,
                       put_all, relay, sha, soon, stream_end, upstream)
from conftest import assert_stored, wait_for


def forward(make_relay, data, key="f/k", down=None, **opts):
    """A relay, an upstream that PUTs data to f/..., and the Downstream
    that got it whole: (relay, upstream, stream id, downstream, its
    stream id)."""
    d = down or Downstream()
    r = relay(make_relay, downs=[d], **opts)
    p = upstream(r)
    sid = put_all(p, key, data)
    d.accept()
    put = d.expect_put()
    got, last = d.read_stream(put.stream)
    assert got == data and last.type == W.END
    return r, p, sid, d, put.stream


def result(p, sid):
    f = stream_end(p, sid)
    assert f.type == W.RESULT, f
    return f.entries


def refused(p, sid, d, dsid, why):
    """relayd refused the next hop's RESULT: ABORT protocol to it, and a
    failed entry for it upstream, with the reason; nothing it claimed
    goes on."""
    f = d.expect(lambda f: f.stream == dsid, soon(), "ABORT")
    assert f.type == W.ABORT and f.code == W.ABORT_PROTOCOL, f
    es = result(p, sid)
    assert es[0].node == b"r"
    assert es[0].status != W.RES_STORED
    failed = [e for e in es if e.status == W.RES_FAILED]
    assert failed and failed[-1].node == b"down", es
    assert why in failed[-1].reason, failed[-1]
    assert not any(e.status == W.RES_STORED for e in es), es
    return es


def test_res_own_entry_first(make_relay):
    """A forwarding relay's own entry comes first: depth 0, forwarded,
    bytes = size, first_us <= last_us, both set."""
    data = payload(30000)
    r, p, sid, d, dsid = forward(make_relay, data)
    d.result(dsid, [entry(W.RES_STORED, 0, b"down", len(data))])
    es = result(p, sid)
    own = es[0]
    assert (own.depth, own.node, own.status, own.bytes) == \
        (0, b"r", W.RES_FORWARDED, len(data))
    assert 0 < own.first_us <= own.last_us


def test_res_depth_shift(make_relay):
    """Entries passed on get depth + 1 (saturating at 255)."""
    data = payload(1000)
    r, p, sid, d, dsid = forward(make_relay, data)
    d.result(dsid, [entry(W.RES_STORED, 0, b"down", len(data)),
                    entry(W.RES_STORED, 1, b"far", len(data)),
                    entry(W.RES_FAILED, 255, b"edge", 0, b"x")])
    es = result(p, sid)
    assert [(e.node, e.depth) for e in es] == \
        [(b"r", 0), (b"down", 1), (b"far", 2), (b"edge", 255)]


def test_res_failed_hop_entry(make_relay):
    """A next hop that aborts gets a failed entry written by relayd: depth
    1, the configured name of the hop (not its HELLO id), the bytes sent
    to it, and the reason."""
    data = payload(2000)
    r, p, sid, d, dsid = forward(make_relay, data,
                                 down=Downstream(node="calls-itself-x"))
    d.send_abort(dsid, W.ABORT_INTERNAL, b"disk on fire")
    es = result(p, sid)
    e = [e for e in es if e.depth == 1]
    assert len(e) == 1
    e = e[0]
    assert (e.status, e.node, e.bytes) == (W.RES_FAILED, b"down", len(data))
    assert b"disk on fire" in e.reason


def test_res_next_hop_own_name(make_relay):
    """Entries the next hop reports carry the names it wrote; the hop
    names itself, relayd passes that on (and labels it "via" the
    configured link locally)."""
    data = payload(1000)
    r, p, sid, d, dsid = forward(make_relay, data,
                                 down=Downstream(node="calls-itself-x"))
    d.result(dsid, [entry(W.RES_STORED, 0, b"calls-itself-x", len(data))])
    es = result(p, sid)
    assert es[1].node == b"calls-itself-x"


def test_res_result_before_end(make_relay):
    d = Downstream()
    r = relay(make_relay, downs=[d])
    p = upstream(r)
    data = payload(5000)
    sid = p.put("f/early", data)
    d.accept()
    put = d.expect_put()
    d.result(put.stream, [entry(W.RES_STORED, 0, b"down", len(data))])
    # Before END the relay (no store, no other branch) fails fast: the
    # branch's failed entry goes upstream as an ABORT that names it
    # (Blame), or as a RESULT if the whole payload was in first.
    f = d.expect(lambda f: f.stream == put.stream, soon(), "ABORT")
    assert f.type == W.ABORT and f.code == W.ABORT_PROTOCOL, f
    try:
        p.send_data(sid, data)
        p.send_end(sid)
    except OSError:
        pass
    f = stream_end(p, sid)
    if f.type == W.ABORT:
        assert f.msg.startswith(b"failed at down (depth 1): "), f
        assert b"before END" in f.msg, f
    else:
        failed = [e for e in f.entries if e.status == W.RES_FAILED]
        assert failed and failed[-1].node == b"down", f
        assert b"before END" in failed[-1].reason, f


def test_res_zero_entries(make_relay):
    data = payload(100)
    r, p, sid, d, dsid = forward(make_relay, data)
    d.result(dsid, [])
    refused(p, sid, d, dsid, b"own entry")


def test_res_first_not_depth0(make_relay):
    data = payload(100)
    r, p, sid, d, dsid = forward(make_relay, data)
    d.result(dsid, [entry(W.RES_STORED, 1, b"down", len(data))])
    refused(p, sid, d, dsid, b"own entry")


def test_res_second_depth0(make_relay):
    data = payload(100)
    r, p, sid, d, dsid = forward(make_relay, data)
    d.result(dsid, [entry(W.RES_FORWARDED, 0, b"down", len(data)),
                    entry(W.RES_STORED, 0, b"other", len(data))])
    refused(p, sid, d, dsid, b"depth")


def test_res_bytes_not_sent(make_relay):
    """The first entry's bytes must be what relayd sent."""
    data = payload(100)
    r, p, sid, d, dsid = forward(make_relay, data)
    d.result(dsid, [entry(W.RES_FAILED, 0, b"down", 99, b"short")])
    refused(p, sid, d, dsid, b"bytes")


def test_res_stored_bytes_not_size(make_relay):
    """A stored (or forwarded) entry must report the PUT's size."""
    data = payload(100)
    r, p, sid, d, dsid = forward(make_relay, data)
    d.result(dsid, [entry(W.RES_FORWARDED, 0, b"down", len(data)),
                    entry(W.RES_STORED, 1, b"far", 50)])
    refused(p, sid, d, dsid, b"bytes")


def test_res_at_most_255(make_relay):
    """A relay keeps its own entry and the first 254 others."""
    data = payload(100)
    r, p, sid, d, dsid = forward(make_relay, data)
    ents = [entry(W.RES_FORWARDED, 0, b"down", len(data))]
    ents += [entry(W.RES_FORWARDED, 1, b"n%d" % i, len(data))
             for i in range(254)]
    d.result(dsid, ents)
    es = result(p, sid)
    assert len(es) == 255
    assert es[0].node == b"r" and es[1].node == b"down"
    assert es[-1].node == b"n252"


def test_res_from_sender_ignored(make_relay):
    """A RESULT sent by the stream's own sender is ignored."""
    r = relay(make_relay)
    p = upstream(r)
    data = payload(500)
    sid = p.put("s/self", data)
    p.send_raw(W.enc_result(sid, [entry(W.RES_STORED, 0, b"me", 500)]))
    p.send_data(sid, data)
    p.send_end(sid)
    es = result(p, sid)
    assert es[0].node == b"r" and es[0].status == W.RES_STORED
    assert_stored(r, "s/self", data)


def test_res_no_hop_reached(make_relay):
    """A relay that does not store and whose only next hop cannot be
    reached reports no forwarded entry: the stream fails (its own entry,
    if any, is failed, with the hop's failure)."""
    d = Downstream()
    port = d.port
    d.close()       # nothing listens there now
    r = relay(make_relay, downs=[d], connect_timeout=0.5)
    p = upstream(r)
    data = payload(1000)
    sid = put_all(p, "f/nowhere", data)
    f = stream_end(p, sid)
    if f.type == W.RESULT:
        assert all(e.status == W.RES_FAILED for e in f.entries), f
    else:
        assert f.code != W.ABORT_NONE
    assert port


def test_res_replay_stored(make_relay):
    """A put id that was stored, sent again with the same key, size and
    SHA-256, is an idempotent retry: the payload is read again and the
    remembered RESULT comes back."""
    r = relay(make_relay)
    p = upstream(r)
    data = payload(800)
    pid = os.urandom(16)
    a = result(p, put_all(p, "s/again", data, put_id=pid))
    b = result(p, put_all(p, "s/again", data, put_id=pid))
    assert [(e.node, e.status, e.bytes) for e in a] == \
        [(e.node, e.status, e.bytes) for e in b]
    assert_stored(r, "s/again", data)


def test_res_reuse_other_key(make_relay):
    """The same put id with another key or payload is refused (loop)."""
    r = relay(make_relay)
    p = upstream(r)
    data = payload(800)
    pid = os.urandom(16)
    result(p, put_all(p, "s/first", data, put_id=pid))
    sid = p.put("s/second", data, put_id=pid)
    f = stream_end(p, sid)
    assert f.type == W.ABORT and f.code == W.ABORT_LOOP
    sid = p.put("s/first", data + b"!", put_id=pid)
    f = stream_end(p, sid)
    assert f.type == W.ABORT and f.code == W.ABORT_LOOP
    assert not os.path.exists(r.stored_path("s/second"))


def test_res_retry_after_failure(make_relay):
    """A put id whose PUT failed may be sent again: it is a new attempt
    and can succeed."""
    r = relay(make_relay)
    p = upstream(r)
    data = payload(800)
    pid = os.urandom(16)
    sid = p.put("s/retry", data, put_id=pid)
    p.send_data(sid, data[:100])
    p.send_abort(sid, W.ABORT_CANCELLED, b"try later")
    wait_for(lambda: not r.streams(), 5, "the first attempt to end")
    es = result(p, put_all(p, "s/retry", data, put_id=pid))
    assert es[0].status == W.RES_STORED
    assert_stored(r, "s/retry", data)
