"""Results you can trust: a next hop's RESULT is checked before it goes up.

Behaviour proved, with a fake downstream peer "liar" built on relaywire
(relayd dials it as its configured next hop):
- a RESULT "stored" sent before relayd sent END fails that branch with
  "next hop liar sent RESULT before END": relayctl put exits nonzero,
  names liar, and nothing of its claim (no "stored" entry, no deeper hop
  it invented) reaches the origin;
- a RESULT after END whose own entry claims another byte count than
  relayd sent is refused the same way;
- an honest RESULT's entries reach relayctl labelled with who vouches for
  them ("via": the configured name of the link they came in on);
- a replayed put id with another key is refused, not reported stored.
Every refusal is counted in `relayctl -j show stats` (results_refused)
and in the Prometheus metrics when the relay has an endpoint.
"""

import hashlib
import os
import socket
import time

import pytest

import relaywire as W
from conftest import HOST, put, put_bg, results_by_node

SIZE = 200 * 1024
PUT_ID = "fedcba9876543210fedcba9876543210"


class FakeNextHop:
    """A listening socket posing as next hop `name`: accept() takes the
    connection relayd dials and exchanges HELLOs with the given windows."""

    def __init__(self, name="liar"):
        self.name = name
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((HOST, 0))
        self.lsock.listen(4)
        self.port = self.lsock.getsockname()[1]
        self.conn = None

    @property
    def address(self):
        return "%s:%d" % (HOST, self.port)

    def accept(self, conn_window, stream_window, timeout=15):
        self.lsock.settimeout(timeout)
        sock, _ = self.lsock.accept()
        sock.settimeout(None)
        c = W.PeerConn(HOST, self.port, node=self.name, timeout=timeout)
        c.sock = sock
        c.send_raw(W.enc_hello(self.name, conn_window, stream_window))
        f = c.read_frame()
        assert f.type == W.HELLO, f
        c.peer_hello = f
        c.conn_credit = f.conn_window
        self.conn = c
        return c

    def read_put(self, timeout=15):
        return self.conn.expect(lambda f: f.type == W.PUT,
                                deadline=time.monotonic() + timeout,
                                what="PUT")

    def read_to_end(self, sid, timeout=20):
        """Payload bytes of stream sid until its END (credit returned)."""
        got = 0
        deadline = time.monotonic() + timeout
        while True:
            f = self.conn.read_frame(deadline)
            if f.stream != sid:
                continue
            if f.type == W.DATA:
                got += len(f.data)
                self.conn.send_raw(W.enc_credit(sid, len(f.data)))
            elif f.type == W.END:
                return got
            elif f.type == W.ABORT:
                pytest.fail("relayd aborted stream %d: %r" % (sid, f.msg))

    def close(self):
        if self.conn is not None:
            self.conn.close()
        self.lsock.close()


@pytest.fixture
def liar(make_relay):
    """(origin relay "origin" routing every key to the fake next hop
    "liar" only, the FakeNextHop)."""
    fake = FakeNextHop("liar")
    origin = make_relay("origin", peers=[{"name": "liar",
                                           "address": fake.address}],
                        routes=[{"prefix": "", "hops": ["liar"],
                                 "store": False}])
    origin.start()
    try:
        yield origin, fake
    finally:
        fake.close()


def assert_liar_blamed(rc, js, why):
    assert rc != 0, "a forged RESULT was reported as success: %r" % js
    nodes = results_by_node(js)
    assert "liar" in nodes, js
    assert nodes["liar"]["status"] == "failed", js
    assert why in nodes["liar"]["reason"], js
    assert nodes["liar"].get("via") == "origin", js
    # Nothing the liar claimed went up: no stored entry anywhere, and no
    # entry for the deeper hop it made up.
    assert not [e for e in js["results"] if e["status"] == "stored"], js
    assert "ghost" not in nodes, js


def test_result_before_end_fails_the_branch(liar):
    origin, fake = liar
    # No credit at all: relayd cannot get near END.
    fake.accept(conn_window=0, stream_window=0)
    data = os.urandom(SIZE)
    bg = put_bg(origin, "hostile/early", data)
    put_f = fake.read_put()
    assert put_f.size == SIZE
    fake.conn.send_raw(W.enc_result(put_f.stream, [
        W.Entry(W.RES_STORED, 0, "liar", SIZE),
        W.Entry(W.RES_STORED, 1, "ghost", SIZE)]))
    rc, js = bg.finish(30)
    assert_liar_blamed(rc, js, "next hop liar sent RESULT before END")
    assert origin.stats()["results_refused"] == 1
    assert "result refused: next hop liar sent RESULT before END" in \
        origin.log_text()


# (test id, key, the two entries' sizes, the reason liar is blamed for,
# results_refused afterwards or None to leave it unchecked)
FORGED_AFTER_END = [
    # Its own entry claims more bytes than relayd sent.
    ("byte-count", "hostile/short",
     [(W.RES_STORED, SIZE + 4096), (W.RES_STORED, SIZE + 4096)],
     "claiming %d bytes received, %d were sent" % (SIZE + 4096, SIZE), 1),
    # A deeper entry stored with another size than the payload's.
    ("deeper-size", "hostile/deep",
     [(W.RES_FORWARDED, SIZE), (W.RES_STORED, 17)],
     "claiming stored with 17 of %d bytes" % SIZE, None),
]


@pytest.mark.parametrize("key,entries,why,refused",
                         [c[1:] for c in FORGED_AFTER_END],
                         ids=[c[0] for c in FORGED_AFTER_END])
def test_forged_result_after_end_fails_the_branch(liar, key, entries, why,
                                                  refused):
    """A RESULT after END (every byte read) with entries for liar (depth
    0) and a made-up ghost (depth 1) that do not match what was sent fails
    liar's branch, and nothing of its claim goes up."""
    origin, fake = liar
    fake.accept(conn_window=4 << 20, stream_window=1 << 20)
    data = os.urandom(SIZE)
    bg = put_bg(origin, key, data)
    put_f = fake.read_put()
    got = fake.read_to_end(put_f.stream)
    assert got == SIZE
    (st0, size0), (st1, size1) = entries
    fake.conn.send_raw(W.enc_result(put_f.stream, [
        W.Entry(st0, 0, "liar", size0), W.Entry(st1, 1, "ghost", size1)]))
    rc, js = bg.finish(30)
    assert_liar_blamed(rc, js, why)
    if refused is not None:
        assert origin.stats()["results_refused"] == refused


def test_honest_result_is_labelled_with_the_link(liar):
    origin, fake = liar
    fake.accept(conn_window=4 << 20, stream_window=1 << 20)
    data = os.urandom(SIZE)
    bg = put_bg(origin, "hostile/honest", data)
    put_f = fake.read_put()
    assert put_f.sha256 == hashlib.sha256(data).digest()
    fake.read_to_end(put_f.stream)
    fake.conn.send_raw(W.enc_result(put_f.stream, [
        W.Entry(W.RES_FORWARDED, 0, "liar", SIZE),
        W.Entry(W.RES_STORED, 1, "deep", SIZE)]))
    rc, js = bg.finish(30)
    assert rc == 0, js
    nodes = results_by_node(js)
    assert nodes["origin"]["via"] == "origin", js
    assert nodes["liar"]["via"] == "liar", js
    assert nodes["deep"]["via"] == "liar", js
    assert nodes["deep"]["depth"] == 2, js
    assert origin.stats()["results_refused"] == 0


def test_replayed_id_with_another_key_is_refused(make_relay):
    r = make_relay("solo", store=True)
    r.start()
    data = os.urandom(4096)
    rc, js = put(r, "replay/first", data, put_id=PUT_ID)
    assert rc == 0, js
    rc, js = put(r, "replay/second", data, put_id=PUT_ID)
    assert rc != 0, "a replay under another key was reported: %r" % js
    assert "stored under another key" in js.get("error", ""), js
    assert not os.path.exists(r.stored_path("replay/second"))
    # The same key is still a replay, answered as stored.
    rc, js = put(r, "replay/first", data, put_id=PUT_ID)
    assert rc == 0 and js.get("replayed") is True, js
