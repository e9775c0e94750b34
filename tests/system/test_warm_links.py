"""Warm links: relayd dials its peers at start, keeps retrying a peer
that is not there with growing, jittered delays that show peers shows,
and brings the link up without a PUT having to ask for it.

- test_retry_visible_then_warm: hop0's next hop hop1 is not listening.
  show peers -j counts the attempts (rising), gives the jittered delay
  of the pending retry (within [c/2, c] for the backoff ceiling c of
  that attempt, 100 ms doubling to the 5 s cap) and the milliseconds
  left (never above the delay), and the last error; the table has a
  "retrying" block.  Once hop1 starts, the link comes up with no PUT
  sent (attempts back to 0, connects 1, no retry pending), and a PUT
  then stores without a new dial: the link's connects count stays 1 and
  its age goes on growing.
- test_put_during_dial_waits: a PUT that arrives while the link is
  still in its handshake waits for it and is delivered, not failed.
"""

import time

from conftest import (assert_stored, ctl_json, put, put_bg, relayctl,
                      wait_for)
import protoutil as U
import relaywire as W

OPTS = {"connect_timeout": 1.0, "handshake_timeout": 3.0}
CAP_MS = 5000


def out_peer(relay, name):
    for p in ctl_json(relay, "show", "peers")["peers"]:
        if p["direction"] == "out" and p["name"] == name:
            return p
    raise AssertionError("%s has no outbound peer %s" % (relay.name, name))


def ceiling(attempt):
    return min(CAP_MS, 100 * 2 ** (attempt - 1))


def sample_retries(relay, name, want, timeout):
    """{attempts: retry_delay_ms} for every pending retry seen until the
    attempts reach want; each sample is checked on the way."""
    delays = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        p = out_peer(relay, name)
        assert p["state"] != "up", p
        if p["next_attempt_ms"] is not None:
            a, d = p["attempts"], p["retry_delay_ms"]
            assert a >= 1 and p["connects"] == 0, p
            assert 0 <= p["next_attempt_ms"] <= d <= CAP_MS, p
            assert ceiling(a) // 2 <= d <= ceiling(a), p
            assert "refused" in p["last_error"], p
            assert delays.setdefault(a, d) == d, (delays, p)
            if a >= want:
                return delays
        time.sleep(max(0.0, min(0.02, deadline - time.monotonic())))
    raise AssertionError("attempts did not reach %d: %r" % (want, delays))


def test_retry_visible_then_warm(make_relay):
    hop1 = make_relay("hop1", store=True, **OPTS)
    hop0 = make_relay("hop0", peers=[{"name": "hop1", "relay": hop1}],
                      routes=[{"prefix": "", "hops": ["hop1"]}], **OPTS)
    hop0.start()
    delays = sample_retries(hop0, "hop1", 5, 8)
    # Growing: each ceiling doubles; jittered: not all on the ceiling.
    assert max(delays) >= 5 and len(delays) >= 3, delays
    assert any(d != ceiling(a) for a, d in delays.items()), delays
    r = relayctl(["show", "peers"], socket_path=hop0.socket)
    assert r.returncode == 0 and "\nretrying:\n" in r.stdout, r.stdout
    assert any(ln.split()[:2] == ["hop1", "down"] and "refused" in ln
               for ln in r.stdout.splitlines()
               if "retrying" not in ln), r.stdout

    hop1.start()
    # The pending retry is at most CAP_MS away; the dial itself is quick.
    p = wait_for(lambda: (lambda q: q if q["state"] == "up" else None)(
        out_peer(hop0, "hop1")), CAP_MS / 1000 + OPTS["connect_timeout"] +
        1, "hop0's link to hop1 to come up with no PUT")
    assert p["attempts"] == 0 and p["connects"] == 1, p
    assert p["next_attempt_ms"] is None and p["retry_delay_ms"] is None, p
    assert p["last_error"] == "", p
    assert ctl_json(hop0, "status")["puts_received"] == 0

    data = b"w" * 50000
    rc, js = put(hop0, "warm", data, timeout=20)
    assert rc == 0, js
    assert_stored(hop1, "warm", data)
    q = out_peer(hop0, "hop1")
    # The PUT used the link that was up: no dial, the same link.
    assert q["state"] == "up" and q["connects"] == 1, q
    assert q["attempts"] == 0 and q["age_s"] >= p["age_s"], (p, q)


def test_put_during_dial_waits(make_relay):
    d = U.Downstream()
    # relayd's TCP connect completes in d's backlog; its HELLO waits for
    # an answer until d accepts: the link is in its handshake.
    r = U.relay(make_relay, [d], **OPTS)
    wait_for(lambda: out_peer(r, "down")["state"] == "handshake", 5,
             "the link to down in its handshake")
    data = U.payload(20000)
    bg = put_bg(r, "f/dial", data)
    wait_for(lambda: len(ctl_json(r, "show", "streams")["streams"]) == 1,
             5, "the PUT to be admitted while the link dials")
    assert out_peer(r, "down")["state"] == "handshake"
    d.accept()
    put_frame = d.expect_put()
    got, last = d.read_stream(put_frame.stream)
    assert got == data and last.type == W.END, last
    d.result(put_frame.stream, [U.entry(W.RES_STORED, 0, b"down",
                                        len(data))])
    rc, js = bg.finish(15)
    assert rc == 0, js
    p = out_peer(r, "down")
    assert p["connects"] == 1 and p["attempts"] == 0, p
    d.close()
