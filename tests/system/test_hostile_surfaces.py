"""Operator surfaces stay true under hostile input; the loop table holds.

Behaviour proved:
- a key with a newline, an ESC sequence, a forged "key=" field and bytes
  that are not UTF-8, sent by a peer and left in flight, is written
  escaped in the log (no raw ESC, no injected line, blanks escaped in the
  key= field) and shown escaped, not dropped, in
  `relayctl -j status` and `relayctl -j show streams`;
- a flood of 70,000 PUT+ABORT pairs with fresh put ids from one peer does
  not evict the id of a PUT still in flight: that id sent again by
  another peer is refused as a loop, and a legitimate PUT still stores.
"""

import os
import select
import time

import relaywire as W
from conftest import (HOST, assert_stored, ctl_json, free_port, put,
                      wait_for)

HOSTILE_KEY = b"bad\nkey=forged \x1b[31mred\x1b[0m \xff\xfe\xc3("
ESCAPED_KEY = ("bad\\x0akey=forged \\x1b[31mred\\x1b[0m "
               "\\xff\\xfe\\xc3(")


def test_hostile_key_is_escaped_in_log_and_json(make_relay):
    relay = make_relay("esc", store=True)
    relay.start()
    off = relay.log_size()
    size = 256 * 1024
    with W.PeerConn(HOST, relay.port, node="sender").connect() as c:
        sid = c.open_stream(HOSTILE_KEY, size, b"\0" * 32)
        c.send_some(sid, b"x" * 1000)
        # In flight: 1000 of 256 KiB bytes in.
        wait_for(lambda: any(s.get("bytes_in") == 1000
                             for s in relay.streams()), 10,
                 "the stream to show in relayctl status")
        keys = [s["key"] for s in relay.streams()]
        assert keys == [ESCAPED_KEY], keys
        shown = ctl_json(relay, "show", "streams")["streams"]
        assert [s["key"] for s in shown] == [ESCAPED_KEY], shown
        c.send_raw(W.enc_abort(sid, W.ABORT_CANCELLED, b"bye\n\x1b[2J"))
        wait_for(lambda: not relay.streams(), 10, "the stream to end")
    with open(relay.log_path, "rb") as f:
        f.seek(off)
        raw = f.read()
    assert b"\x1b" not in raw, "raw ESC in the log"
    assert b"\xff" not in raw, "raw non-UTF-8 byte in the log"
    lines = raw.decode("ascii").splitlines()
    # In a log line's unquoted key= field blanks are escaped too, so the
    # key cannot forge the fields after it.
    logged = ESCAPED_KEY.replace(" ", "\\x20")
    opened = [ln for ln in lines if "key=" + logged + " size=" in ln]
    assert opened, raw
    assert not [ln for ln in lines if " key=bad" in ln and
                "key=" + logged not in ln], raw
    # No line starts with what followed the newline in the key.
    assert not [ln for ln in lines if ln.startswith("key=forged")], raw
    assert "bye\\x0a\\x1b[2J" in raw.decode("ascii"), raw


def drain(sock):
    """Read and drop whatever relayd sent so far (never blocks)."""
    while select.select([sock], [], [], 0)[0]:
        try:
            if not sock.recv(1 << 20):
                return
        except (BlockingIOError, InterruptedError):
            return


def test_put_id_flood_does_not_readmit_in_flight_id(make_relay):
    # Every flood key goes to a next hop that is down: nothing touches
    # the disk, and each PUT is admitted, then fails at once (no branch
    # left).  The held PUT is stored here, so it stays in flight until
    # its upstream sends the rest.
    relay = make_relay("loop", peers=[{"name": "nowhere",
                                       "address": "%s:%d" % (
                                           HOST, free_port())}],
                       routes=[{"prefix": "", "hops": ["nowhere"],
                                "store": False},
                               {"prefix": "held", "hops": [],
                                "store": True},
                               {"prefix": "ok/", "hops": [],
                                "store": True}],
                       stream_inactivity_timeout=120.0)
    relay.start()
    put_id = os.urandom(W.PUT_ID_LEN)
    holder = W.PeerConn(HOST, relay.port, node="holder").connect()
    flooder = W.PeerConn(HOST, relay.port, node="flooder").connect()
    try:
        sid = holder.open_stream(b"held", 1 << 20, b"\0" * 32,
                                 put_id=put_id)
        holder.send_some(sid, b"h" * 100)
        wait_for(lambda: any(s.get("key") == "held"
                             for s in relay.streams()), 10,
                 "the held PUT in flight")
        before = relay.status()["puts_received"]
        n, batch, deadline = 70000, 1000, time.monotonic() + 120
        sha = b"\1" * 32
        s = 1
        for _ in range(n // batch):
            assert time.monotonic() < deadline, "flood took too long"
            out = bytearray()
            for _ in range(batch):
                out += W.enc_put(s, os.urandom(16), 8, b"f", 1, sha)
                out += W.enc_abort(s, W.ABORT_CANCELLED)
                s += 2
            flooder.send_raw(bytes(out))
            drain(flooder.sock)
        wait_for(lambda: relay.status()["puts_received"] >= before + n,
                 max(1.0, deadline - time.monotonic()),
                 "relayd to admit the %d flood PUTs" % n)
        # The held PUT is still in flight; its id again is a loop.
        assert any(s.get("key") == "held" for s in relay.streams())
        with W.PeerConn(HOST, relay.port, node="again").connect() as c:
            sid2 = c.open_stream(b"held", 1 << 20, b"\0" * 32,
                                 put_id=put_id)
            try:
                f = c.expect_stream_end(sid2, time.monotonic() + 10)
            except W.PeerTimeout:
                f = None        # admitted: no ABORT came
        assert f is not None and f.type == W.ABORT and \
            f.code == W.ABORT_LOOP, (
            "an id still in flight was admitted again after the flood: "
            "%r" % f)
        # A legitimate PUT from the control socket still stores.
        data = os.urandom(64 * 1024)
        rc, js = put(relay, "ok/legit", data, timeout=30)
        assert rc == 0, js
        assert_stored(relay, "ok/legit", data)
    finally:
        holder.close()
        flooder.close()
