"""Reload and drain keep every PUT's promise.

Behaviour proved:
- relayctl reload with a good config makes a new generation: a new PUT
  follows the new route (stored at hop2, not hop1), while a PUT that was
  in flight during the reload finishes on the route it started with
  (stored at hop1).
- relayctl reload with a broken config is refused with file:line, the
  generation stays, and PUTs still follow the old routes.
- Drain (relayctl drain, or SIGTERM) refuses new PUTs, lets the PUT in
  flight finish and be stored, and then relayd exits 0 by itself.
- A second SIGTERM during a drain stops relayd at once.
"""

import os
import signal
import subprocess

from conftest import (assert_stored, ctl_json, put, put_bg, relayctl,
                      results_by_node, wait_for)

SLOW = 256 * 1024                       # bytes/s on the slow link
SIZE = 1024 * 1024                      # ~4 s over the slow link


def exit_code(relay, timeout):
    """relayd's exit status, waiting at most timeout seconds."""
    try:
        return relay.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        return None


def links_up(relay):
    return all(p["state"] == "up" for p in relay.status()["peers"]
               if p["direction"] == "out")


def three_relays(make_relay):
    hop1 = make_relay("hop1", store=True)
    hop2 = make_relay("hop2", store=True)
    hop0 = make_relay("hop0",
                      peers=[{"name": "hop1", "relay": hop1,
                              "rate_limit": SLOW},
                             {"name": "hop2", "relay": hop2}],
                      routes=[{"prefix": "", "hops": ["hop1"],
                               "store": False}])
    for r in (hop1, hop2, hop0):
        r.start()
    wait_for(lambda: links_up(hop0), 15, "hop0's links up")
    return hop0, hop1, hop2


def test_reload_new_route_for_new_puts_old_route_in_flight(make_relay):
    hop0, hop1, hop2 = three_relays(make_relay)
    gen = hop0.status()["generation"]
    old = os.urandom(SIZE)
    bg = put_bg(hop0, "reload/in-flight", old)
    wait_for(lambda: hop0.stream_for("reload/in-flight") is not None, 10,
             "the first PUT to be in flight")

    hop0.routes = [{"prefix": "", "hops": ["hop2"], "store": False}]
    hop0.write_config()
    js = ctl_json(hop0, "reload")
    assert js["ok"] and js["generation"] > gen, js

    new = os.urandom(4096)
    rc, js = put(hop0, "reload/new", new)
    assert rc == 0, js
    assert set(results_by_node(js)) == {"hop0", "hop2"}, js
    assert_stored(hop2, "reload/new", new)
    assert not os.path.exists(hop1.stored_path("reload/new"))

    rc, js = bg.finish(30)
    assert rc == 0, js
    assert set(results_by_node(js)) == {"hop0", "hop1"}, js
    assert_stored(hop1, "reload/in-flight", old)


def test_reload_broken_config_refused(make_relay):
    hop0, hop1, hop2 = three_relays(make_relay)
    gen = hop0.status()["generation"]
    with open(hop0.conf_path, "a") as f:
        f.write("routes = oops;\n")
    js = ctl_json(hop0, "reload", rc=1)
    assert js["ok"] is False, js
    assert hop0.conf_path + ":" in js["error"], js
    assert hop0.status()["generation"] == gen
    data = os.urandom(1000)
    rc, js = put(hop0, "reload/after-broken", data)
    assert rc == 0, js
    assert_stored(hop1, "reload/after-broken", data)


def test_drain_finishes_in_flight_then_exits(make_relay):
    hop0, hop1, hop2 = three_relays(make_relay)
    hop0.opts["drain_timeout"] = 30.0
    hop0.write_config()
    relayctl(["reload"], socket_path=hop0.socket)
    data = os.urandom(SIZE)
    bg = put_bg(hop0, "drain/in-flight", data)
    wait_for(lambda: hop0.stream_for("drain/in-flight") is not None, 10,
             "the PUT to be in flight")

    js = ctl_json(hop0, "drain")
    assert js["draining"] is True and js["streams"] >= 1, js
    rc, js = put(hop0, "drain/refused", os.urandom(100))
    assert rc == 1 and "draining" in js.get("error", ""), js

    rc, js = bg.finish(30)
    assert rc == 0, js
    assert_stored(hop1, "drain/in-flight", data)
    assert exit_code(hop0, 10) == 0, "relayd did not exit 0 after the drain"


def test_second_sigterm_stops_at_once(make_relay):
    hop0, hop1, hop2 = three_relays(make_relay)
    hop0.opts["drain_timeout"] = 60.0
    hop0.write_config()
    relayctl(["reload"], socket_path=hop0.socket)
    bg = put_bg(hop0, "drain/cut", os.urandom(8 * SIZE))
    wait_for(lambda: hop0.stream_for("drain/cut") is not None, 10,
             "the PUT to be in flight")
    os.kill(hop0.proc.pid, signal.SIGTERM)
    wait_for(lambda: "drain requested by SIGTERM" in hop0.log_text(), 10,
             "the drain to start")
    assert hop0.proc.poll() is None, "the first SIGTERM did not drain"
    os.kill(hop0.proc.pid, signal.SIGTERM)
    assert exit_code(hop0, 5) == 0, "no prompt exit on the second SIGTERM"
    rc, _ = bg.finish(30)
    assert rc != 0


def test_control_clients_do_not_block_each_other(make_relay):
    """A control client that sends half a request (or nothing), or a
    monitor that never reads, does not delay another client's request;
    a client sending garbage gets an error and only it is closed; the
    control socket is not open to other local users (mode 0660)."""
    import socket as so
    import stat

    relay = make_relay("ctl", store=True).start()
    mode = stat.S_IMODE(os.stat(relay.socket).st_mode)
    assert mode & 0o007 == 0, "control socket mode %o" % mode
    idle = so.socket(so.AF_UNIX, so.SOCK_STREAM)
    idle.connect(relay.socket)
    half = so.socket(so.AF_UNIX, so.SOCK_STREAM)
    half.connect(relay.socket)
    half.sendall(b'{"cmd":"sta')
    bad = so.socket(so.AF_UNIX, so.SOCK_STREAM)
    bad.connect(relay.socket)
    bad.sendall(b"\x00\xffgarbage\n")
    bad.settimeout(5)
    answer = bad.recv(4096)
    assert b'"ok":false' in answer and b"malformed" in answer, answer
    assert bad.recv(4096) == b"", "the bad client was not closed"
    js = ctl_json(relay, "status")
    assert js["ok"], js
    data = os.urandom(5000)
    rc, js = put(relay, "ctl/independent", data)
    assert rc == 0, js
    assert_stored(relay, "ctl/independent", data)
    for s in (idle, half, bad):
        s.close()
