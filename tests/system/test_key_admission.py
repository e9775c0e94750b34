"""A key no store could name is refused at the first hop.

A key is stored under a file name of at most NAME_MAX (255) bytes after
escaping (src/store.h), so a longer key could only fail at the storing
hop, after the payload has crossed every hop before it.  Behaviour
proved, on a chain hop0 (does not store) -> hop1 (stores): `relayctl put`
into hop0 of a 300-byte key, or of a 100-byte key that escapes to 300
bytes, exits non-zero with "key too long for a file name" and the sizes,
code "protocol", and hop1 never sees a PUT; a PUT of such a key from a
peer is refused by hop0 with ABORT protocol and the same reason; a key of
exactly 255 plain bytes is still stored on hop1.
"""

import hashlib
import os
import time

from conftest import (HOST, parse_json_output, relayctl, results_by_node,
                      wait_stored)
import relaywire as W

DEADLINE = 10.0


def put(relay, key, data):
    """relayctl -j put (the fixtures' put names its payload file after
    the key, too long here): (exit code, parsed JSON)."""
    path = os.path.join(relay.dir, "payload.%d" % time.monotonic_ns())
    with open(path, "wb") as f:
        f.write(data)
    r = relayctl(["-j", "put", key, path], timeout=30,
                 socket_path=relay.socket)
    return r.returncode, parse_json_output(r.stdout)


def puts_received(relay):
    return relay.status()["puts_received"]


def test_long_key_refused_by_relayctl_put(chain):
    hop0, hop1 = chain(1, store=(1,))
    for key, escaped in (("k" * 300, 300), ("/" * 100, 300)):
        rc, js = put(hop0, key, b"never stored\n")
        assert rc != 0 and js is not None, (rc, js)
        assert js.get("code") == "protocol", js
        assert ("key too long for a file name: %d bytes, %d once escaped, "
                "at most 255" % (len(key), escaped)) in js.get("error", ""), js
        assert not results_by_node(js).get("hop1"), js
    assert puts_received(hop1) == 0, "hop1 saw a PUT hop0 should refuse"
    assert hop1.store_files() == []


def test_long_key_refused_from_a_peer(chain):
    hop0, hop1 = chain(1, store=(1,))
    payload = b"from a peer\n"
    with W.PeerConn(HOST, hop0.port).connect() as peer:
        sid = peer.open_stream("p" * 300, len(payload),
                               hashlib.sha256(payload).digest())
        f = peer.expect_stream_end(sid,
                                   deadline=time.monotonic() + DEADLINE)
    assert f.type == W.ABORT and f.code == W.ABORT_PROTOCOL, f
    assert b"key too long for a file name: 300 bytes" in f.msg, f.msg
    assert puts_received(hop1) == 0


def test_longest_key_still_stored(chain):
    hop0, hop1 = chain(1, store=(1,))
    key, data = "k" * 255, b"just fits\n"
    rc, js = put(hop0, key, data)
    assert rc == 0, js
    wait_stored(hop1, key, data, DEADLINE)
