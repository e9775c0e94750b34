"""Bad peer input gets an error for that peer only.

Behaviour proved (DESIGN.md invariants 5 and 6; untrusted input never
crashes): separate peers connect to a relay and send garbage bytes, a PUT
declaring more than max_payload, an unknown frame type, a truncated frame
followed by EOF, DATA for a stream that does not exist, and a HELLO with a
bad version.  Each such peer gets an ABORT or GOAWAY carrying an error
code, or its connection closed (the oversized PUT gets ABORT TOO_LARGE on
its stream, and its connection keeps working); the relay keeps running
and answering status; and a normal relayctl put that is in flight through
the same relay meanwhile is stored intact.
"""

import os
import time

import pytest

from conftest import (HOST, assert_stored, put_bg, store_key_filename,
                      wait_for)
import relaywire as W

MAX_PAYLOAD = 8 << 20
DEADLINE = 10.0


def outcome(peer, deadline):
    """How the relay answered: ("goaway"|"abort", frame) or ("closed",)."""
    while True:
        try:
            f = peer.read_frame(deadline)
        except W.PeerClosed:
            return ("closed", None)
        except W.PeerTimeout:
            pytest.fail("the relay neither answered with an error nor "
                        "closed the connection within the deadline")
        except W.WireError as e:
            pytest.fail("relay sent an undecodable frame: %s" % e)
        if f.type in (W.GOAWAY, W.ABORT):
            return (f.type_name.lower(), f)


def assert_error(out):
    kind, f = out
    assert kind in ("closed", "goaway", "abort"), out
    if f is not None:
        assert f.code != W.ABORT_NONE, "%s without an error code" % f


def attack_garbage(relay):
    peer = W.PeerConn(HOST, relay.port).open_socket()
    peer.send_raw(b"GET / HTTP/1.1\r\nHost: relay\r\n\r\n" + bytes(range(256)))
    assert_error(outcome(peer, time.monotonic() + DEADLINE))
    return peer


def attack_too_large(relay):
    peer = W.PeerConn(HOST, relay.port).connect()
    sid = peer.open_stream("bad/too-large", MAX_PAYLOAD + 1, bytes(32))
    f = peer.expect_stream_end(sid, deadline=time.monotonic() + DEADLINE)
    assert f.type == W.ABORT and f.code == W.ABORT_TOO_LARGE, f
    # Refusing one stream does not tear down the connection.
    peer.ping(deadline=time.monotonic() + DEADLINE)
    return peer


def attack_unknown_type(relay):
    peer = W.PeerConn(HOST, relay.port).connect()
    peer.send_raw(W.raw_frame(200, 0, b"\x01\x02\x03"))
    assert_error(outcome(peer, time.monotonic() + DEADLINE))
    return peer


def attack_truncated(relay):
    peer = W.PeerConn(HOST, relay.port).connect()
    frame = W.enc_put(1, os.urandom(16), 16, b"bad/truncated", 10, bytes(32))
    peer.send_raw(frame[:30])
    peer.shutdown_write()
    out = outcome(peer, time.monotonic() + DEADLINE)
    assert_error(out)
    if out[0] != "closed":          # then the close must follow
        outcome(peer, time.monotonic() + DEADLINE)
    return peer


def attack_data_unknown_stream(relay):
    peer = W.PeerConn(HOST, relay.port).connect()
    peer.send_raw(W.enc_data(99, b"x" * 10))
    out = outcome(peer, time.monotonic() + DEADLINE)
    assert_error(out)
    if out[0] == "abort":
        assert out[1].stream == 99, out
    return peer


def attack_bad_version(relay):
    peer = W.PeerConn(HOST, relay.port).open_socket()
    peer.send_raw(W.enc_hello("pyclient", 1 << 20, 1 << 20, version=2))
    assert_error(outcome(peer, time.monotonic() + DEADLINE))
    return peer


ATTACKS = {
    "garbage": attack_garbage,
    "too_large": attack_too_large,
    "unknown_type": attack_unknown_type,
    "truncated": attack_truncated,
    "data_unknown_stream": attack_data_unknown_stream,
    "bad_version": attack_bad_version,
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_bad_input(chain, attack):
    # hop0 -> hop1 is rate-limited so the normal PUT is still in flight
    # through hop1 while hop1 is attacked.
    relays = chain(1, store=(1,), opts={"max_payload": MAX_PAYLOAD},
                   rate_limit={0: 2 << 20})
    hop1 = relays[1]
    data = os.urandom(3 << 20)
    key = "good/%s" % attack
    bg = put_bg(relays[0], key, data)
    wait_for(lambda: 0 < ((hop1.stream_for(key) or {}).get("bytes_in")
                          or 0) < len(data),
             10, "the normal PUT to be in flight through hop1")

    peer = ATTACKS[attack](hop1)
    peer.close()

    assert hop1.alive(), "hop1 exited after %s" % attack
    st = hop1.status()
    assert st.get("ok") is True, st
    rc, js = bg.finish(30)
    assert rc == 0, "normal put exit %d: %r" % (rc, js)
    assert_stored(hop1, key, data)
    assert hop1.store_files() == [store_key_filename(key)]
