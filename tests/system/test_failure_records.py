"""Failed and aborted PUTs are remembered, and the memory is bounded.

Behaviour proved: `relayctl put` prints the put id on its first line,
before the upload, so a PUT can be looked up whatever becomes of it.
`relayctl outcome ID` answers for a PUT that failed (its only next hop
is unreachable, while it stores: state "failed", the failing hop, the
reason and the per-hop table) and for one whose stream was aborted (its upstream sent
ABORT half way: state "aborted", the reason), not only for successes.
`relayctl show puts` lists the recent ones, newest first.  The relay
whose only next hop is unreachable does not call itself "forwarded".
A flood of 1,100 aborted PUTs keeps at most 1,024 failure records
(OUTCOME_MAX), and does not push out the record of a success.
"""

import hashlib
import os
import re

from conftest import (HOST, ctl_json, free_port, put, relayctl,
                      results_by_node, wait_for)
import relaywire as W

MAX = 1024                               # OUTCOME_MAX


def dead_next_hop(make_relay, store_route=False):
    hop0 = make_relay("hop0", connect_timeout=0.5,
                      peers=[{"name": "hop1",
                              "address": "%s:%d" % (HOST, free_port())}],
                      routes=[{"prefix": "", "hops": ["hop1"],
                               "store": store_route}])
    return hop0.start()


def test_put_id_first_and_failed_outcome(make_relay):
    # hop0 stores too, so the PUT runs to its end and fails there
    # ("failed"), whichever comes first: the upload or the dead link.
    hop0 = dead_next_hop(make_relay, store_route=True)
    rc, text = put(hop0, "rec/failed", os.urandom(5000), json=False)
    assert rc == 1, text
    first = text.splitlines()[0]
    m = re.match(r"^put_id ([0-9a-f]{32})$", first)
    assert m, "first line is %r" % first
    pid = m.group(1)
    o = ctl_json(hop0, "outcome", pid)
    assert o["state"] == "failed", o
    assert o["stored"] is False
    assert o["failing_hop"] == "hop1", o
    assert "hop1" in o["reason"], o
    by = results_by_node(o)
    assert by["hop1"]["status"] == "failed", o
    assert by["hop0"]["status"] == "stored", o
    # The human form names the hop and the reason too.
    r = relayctl(["outcome", pid], socket_path=hop0.socket)
    assert r.returncode == 0, r.stderr
    assert re.search(r"^failing hop\s+hop1$", r.stdout, re.M), r.stdout
    assert re.search(r"^state\s+failed$", r.stdout, re.M), r.stdout


def test_unreachable_only_next_hop_is_no_forwarded_row(make_relay):
    hop0 = dead_next_hop(make_relay)
    rc, js = put(hop0, "rec/lie", os.urandom(100))
    assert rc == 1, js
    by = results_by_node(js)
    assert by["hop0"]["status"] == "failed", js
    assert by["hop1"]["status"] == "failed", js
    assert "forwarded" not in [e["status"] for e in js["results"]], js
    assert "hop1" in js["error"], js


def test_aborted_outcome_and_show_puts(make_relay):
    a = make_relay("relayA", store=True)
    a.start()
    ok_data = os.urandom(1000)
    rc, js = put(a, "rec/ok", ok_data)
    assert rc == 0, js
    ok_id = js["put_id"]
    peer = W.PeerConn(HOST, a.port, node="pyclient").connect()
    pid = os.urandom(16)
    payload = os.urandom(64 * 1024)
    sid = peer.put("rec/aborted", payload, put_id=pid)
    peer.send_data(sid, payload[:1000])
    peer.send_abort(sid, msg=b"client gave up")
    wait_for(lambda: ctl_json(a, "outcome", pid.hex())["state"] ==
             "aborted", 5, "the aborted PUT's record")
    o = ctl_json(a, "outcome", pid.hex())
    assert "client gave up" in o["reason"], o
    assert o["failing_hop"] == "relayA", o
    assert o["results"] and o["results"][0]["status"] == "failed", o
    sp = ctl_json(a, "show", "puts")
    ids = [p["put_id"] for p in sp["puts"]]
    assert ids[:2] == [pid.hex(), ok_id], sp
    assert sp["puts"][0]["state"] == "aborted"
    assert sp["puts"][1]["state"] == "done"
    assert sp["kept_ok"] == 1 and sp["kept_failed"] == 1, sp
    r = relayctl(["show", "puts"], socket_path=a.socket)
    assert r.returncode == 0 and pid.hex() in r.stdout, r.stdout
    peer.close()


def test_failure_records_bounded(make_relay):
    a = make_relay("relayA", store=True)
    a.start()
    rc, js = put(a, "rec/keep-me", os.urandom(100))
    assert rc == 0, js
    ok_id = js["put_id"]
    peer = W.PeerConn(HOST, a.port, node="pyclient").connect()
    n = MAX + 76
    body = b"x" * 10
    sha = hashlib.sha256(body).digest()
    for i in range(n):
        sid = peer.open_stream(b"rec/flood/%d" % i, len(body), sha)
        peer.send_abort(sid, msg=b"flood")
    last = "rec/flood/%d" % (n - 1)
    wait_for(lambda: ctl_json(a, "show", "puts")["puts"][0]["key"] == last,
             30, "the flood's last record")
    sp = ctl_json(a, "show", "puts")
    assert sp["kept_failed"] == MAX, sp["kept_failed"]
    assert sp["max"] == MAX
    assert len(sp["puts"]) <= 100
    assert ctl_json(a, "outcome", ok_id)["state"] == "done"
    peer.close()
