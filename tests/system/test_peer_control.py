"""relayctl peer disable|enable|drain NAME, and what show peers tells.

hop0 routes "" by failover over hop1 then hop2, and "fan/" by fanout
to both; hop1 and hop2 store.  Proven here:

- test_disable_enable: a disabled peer's link closes and is not dialled
  again; failover PUTs store via hop2, a fanout PUT stores on hop2 only
  and succeeds; with both disabled a fanout PUT is refused (no route);
  enable dials it again and failover uses it again.
- test_drain: a slow PUT running on hop1's link finishes and is stored
  intact; a PUT started during the drain goes to hop2; once the slow PUT
  is done the link closes and stays down ("drained") until enable.
- test_show_peers_figures: rtt (last and smoothed, from the PING sent on
  link-up), link age, admin state and generation, in JSON and the table.
- test_state_survives_reload: disabled and drained peers stay so over a
  reload, also when the peer's settings change.
- test_bad_peer_commands: unknown peer names, inbound-only names, bad
  actions and over-long names get a clear error and a non-zero exit.
"""

import re
import time

from conftest import (assert_stored, ctl_json, put, put_bg, relayctl,
                      results_by_node, wait_for)

OPTS = {"connect_timeout": 1.0, "handshake_timeout": 2.0}


def peer(relay, name):
    for p in ctl_json(relay, "show", "peers")["peers"]:
        if p["direction"] == "out" and p["name"] == name:
            return p
    raise AssertionError("%s has no outbound peer %s" % (relay.name, name))


def wait_state(relay, name, state, admin=None, timeout=10):
    return wait_for(lambda: (lambda p: p if p["state"] == state and (
        admin is None or p["admin"] == admin) else None)(peer(relay, name)),
        timeout, "%s: peer %s %s %s" % (relay.name, name, state, admin))


def inbound_up(relay):
    return [p for p in ctl_json(relay, "show", "peers")["peers"]
            if p["direction"] == "in" and p["state"] == "up"]


def triangle(make_relay, rate_limit=0):
    hop1 = make_relay("hop1", store=True, **OPTS)
    hop2 = make_relay("hop2", store=True, **OPTS)
    hop0 = make_relay("hop0", peers=[
        {"name": "hop1", "relay": hop1, "rate_limit": rate_limit},
        {"name": "hop2", "relay": hop2}], routes=[
        {"prefix": "", "hops": ["hop1", "hop2"], "mode": "failover"},
        {"prefix": "fan/", "hops": ["hop1", "hop2"], "mode": "fanout"}],
        **OPTS)
    for r in (hop1, hop2, hop0):
        r.start()
    wait_state(hop0, "hop1", "up")
    wait_state(hop0, "hop2", "up")
    return hop0, hop1, hop2


def stored_on(js):
    return sorted(n for n, e in results_by_node(js).items()
                  if e["status"] == "stored")


def test_disable_enable(make_relay):
    hop0, hop1, hop2 = triangle(make_relay)
    rc, js = put(hop0, "k1", b"1" * 2000, timeout=20)
    assert rc == 0 and stored_on(js) == ["hop1"], js

    r = ctl_json(hop0, "peer", "disable", "hop1")
    assert r["peer"]["admin"] == "disabled", r
    wait_state(hop0, "hop1", "down", "disabled")
    wait_for(lambda: inbound_up(hop1) == [], 5, "hop1 to lose the link")
    rc, js = put(hop0, "k2", b"2" * 2000, timeout=20)
    assert rc == 0 and stored_on(js) == ["hop2"], js
    assert_stored(hop2, "k2", b"2" * 2000)
    rc, js = put(hop0, "fan/a", b"f" * 2000, timeout=20)
    assert rc == 0 and stored_on(js) == ["hop2"], js
    # Not dialled again: for well over the first backoffs, still down.
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        assert peer(hop0, "hop1")["state"] == "down"
        assert inbound_up(hop1) == []
        time.sleep(max(0.0, min(0.1, deadline - time.monotonic())))

    ctl_json(hop0, "peer", "disable", "hop2")
    rc, js = put(hop0, "fan/b", b"x" * 100, timeout=20)
    assert rc != 0 and "disabled" in js.get("error", ""), js
    ctl_json(hop0, "peer", "enable", "hop2")

    r = ctl_json(hop0, "peer", "enable", "hop1")
    assert r["peer"]["admin"] == "enabled", r
    wait_state(hop0, "hop1", "up", "enabled")
    rc, js = put(hop0, "k3", b"3" * 2000, timeout=20)
    assert rc == 0 and stored_on(js) == ["hop1"], js
    assert_stored(hop1, "k3", b"3" * 2000)


def test_drain(make_relay):
    # 512 KiB at 256 KiB/s: the slow PUT runs about two seconds.
    hop0, hop1, hop2 = triangle(make_relay, rate_limit=256 * 1024)
    data = bytes(range(256)) * 2048
    slow = put_bg(hop0, "slow", data)
    wait_for(lambda: peer(hop0, "hop1")["streams"] >= 1, 10,
             "the slow PUT on hop1's link")
    r = ctl_json(hop0, "peer", "drain", "hop1")
    assert r["peer"]["admin"] == "draining" and \
        r["peer"]["state"] == "up", r
    rc, js = put(hop0, "during", b"d" * 1000, timeout=20)
    assert rc == 0 and stored_on(js) == ["hop2"], js
    rc, js = slow.finish(30)
    assert rc == 0 and stored_on(js) == ["hop1"], js
    assert_stored(hop1, "slow", data)
    wait_state(hop0, "hop1", "down", "drained")
    wait_for(lambda: inbound_up(hop1) == [], 5, "hop1 to lose the link")
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        assert peer(hop0, "hop1")["state"] == "down"
        time.sleep(max(0.0, min(0.1, deadline - time.monotonic())))
    ctl_json(hop0, "peer", "enable", "hop1")
    wait_state(hop0, "hop1", "up", "enabled")


def test_show_peers_figures(make_relay):
    hop0, hop1, hop2 = triangle(make_relay)
    p = wait_for(lambda: (lambda q: q if q["rtt_ms"] is not None else None)(
        peer(hop0, "hop1")), 5, "an rtt figure for hop1")
    assert 0 <= p["rtt_ms"] < 1000 and 0 <= p["srtt_ms"] < 1000, p
    assert p["age_s"] >= 0 and p["admin"] == "enabled", p
    assert p["generation"] == 1, p
    assert p["cert_not_after"] is None and p["tls"] is None, p
    wait_for(lambda: peer(hop0, "hop1")["age_s"] >= p["age_s"] + 0.2, 5,
             "hop1's link age to grow")
    inb = inbound_up(hop1)
    assert len(inb) == 1 and inb[0]["admin"] is None, inb
    wait_for(lambda: inbound_up(hop1)[0]["rtt_ms"] is not None, 5,
             "an rtt figure on hop1's inbound link")

    ctl_json(hop0, "peer", "drain", "hop2")
    wait_state(hop0, "hop2", "down", "drained")
    r = relayctl(["show", "peers"], socket_path=hop0.socket)
    assert r.returncode == 0, r.stderr
    assert re.search(r"^hop1\s+\S+\s+out\s+up\s+enabled\s+1\s+0\s+\d+\s+"
                     r"\d+\s+\d+\.\d{3}/\d+\.\d{3}\s+\d+\.\ds\s+-\s+-\s+-$",
                     r.stdout, re.M), r.stdout
    assert re.search(r"^hop2\s+\S+\s+out\s+down\s+drained\s", r.stdout,
                     re.M), r.stdout


def test_state_survives_reload(make_relay):
    hop0, hop1, hop2 = triangle(make_relay)
    ctl_json(hop0, "peer", "disable", "hop1")
    ctl_json(hop0, "peer", "drain", "hop2")
    wait_state(hop0, "hop1", "down", "disabled")
    wait_state(hop0, "hop2", "down", "drained")
    assert ctl_json(hop0, "reload")["generation"] == 2
    # Unchanged peers keep their state; a changed one (a new rate_limit
    # makes a new link object) takes it over too.
    assert peer(hop0, "hop1")["admin"] == "disabled"
    assert peer(hop0, "hop2")["admin"] == "drained"
    hop0.peers[0]["rate_limit"] = 1 << 20
    hop0.write_config()
    assert ctl_json(hop0, "reload")["generation"] == 3
    p = wait_for(lambda: (lambda q: q if q["config_generation"] == 3 else
                          None)(peer(hop0, "hop1")), 5, "hop1 on gen 3")
    assert p["admin"] == "disabled" and p["state"] == "down", p
    rc, js = put(hop0, "fan/c", b"c" * 100, timeout=20)
    assert rc != 0 and "disabled" in js.get("error", ""), js
    ctl_json(hop0, "peer", "enable", "hop1")
    wait_state(hop0, "hop1", "up", "enabled")
    rc, js = put(hop0, "k5", b"5" * 100, timeout=20)
    assert rc == 0 and stored_on(js) == ["hop1"], js


def test_bad_peer_commands(make_relay):
    hop0, hop1, hop2 = triangle(make_relay)
    r = relayctl(["peer", "disable", "nosuch"], socket_path=hop0.socket)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "no configured peer 'nosuch'" in r.stdout + r.stderr
    # hop1 only has an inbound link from hop0: nothing to control.
    r = ctl_json(hop1, "peer", "disable", "hop0", rc=1)
    assert "no configured peer 'hop0'" in r["error"], r
    r = ctl_json(hop0, "peer", "drain", "h" * 200, rc=1)
    assert "1..64" in r["error"], r
    r = relayctl(["peer", "frob", "hop1"], socket_path=hop0.socket)
    assert r.returncode == 2 and "unknown word 'frob'" in r.stderr, r.stderr
    r = relayctl(["peer", "disable"], socket_path=hop0.socket)
    assert r.returncode == 2, r.stderr
    # Nothing changed on the way.
    assert peer(hop0, "hop1")["admin"] == "enabled"
    assert peer(hop0, "hop1")["state"] == "up"
