"""A peer is who its certificate says, on both ends of a link.

Behaviour proved:
- outbound: relay hop0 dials its configured peer "hop2", but the relay
  answering there presents hop3's certificate (valid, signed by the same
  CA).  hop0 refuses the link (log "identity refused ... dialled peer
  hop2: certificate is not hop2", identity_refused in `relayctl -j show
  stats` and relayd_identity_refused_total in the metrics); the link never
  comes up and a PUT routed to it is not stored at the impostor.  The
  same peer configured with `identity = "hop3"` comes up and stores;
- inbound: a TLS client presenting hop0's certificate whose HELLO says it
  is "hop5" is closed with GOAWAY (protocol) and counted; the same client
  saying "hop0" gets a HELLO back and its link is up.
"""

import os
import socket
import ssl
import time
import urllib.request

import relaywire as W
from conftest import HOST, free_port, put, wait_for
from tlsutil import certs_fixture  # noqa: F401  (the certs fixture)


def out_link(relay, name):
    for p in relay.status()["peers"]:
        if p.get("direction") == "out" and p.get("name") == name:
            return p
    return None


def test_dialled_peer_with_another_peers_certificate_is_refused(
        make_relay, certs):
    impostor = make_relay("hop3", tls=certs.tls("hop3"), store=True)
    impostor.start()
    mport = free_port()
    origin = make_relay("hop0", tls=certs.tls("hop0"),
                        peers=[{"name": "hop2",
                                "address": impostor.address}],
                        routes=[{"prefix": "", "hops": ["hop2"],
                                 "store": False}],
                        stream_inactivity_timeout=2.0,
                        extra='metrics = "%s:%d";' % (HOST, mport))
    off = origin.log_size()
    origin.start()
    wait_for(lambda: origin.stats().get("identity_refused", 0) >= 1, 15,
             "hop0 to refuse the impostor's certificate")
    log = origin.log_since(off)
    assert ("identity refused reason=\"dialled peer hop2: certificate is "
            "not hop2: it names CN=hop3 DNS:hop3\"") in log, log
    assert (out_link(origin, "hop2") or {}).get("state") != "up"
    with urllib.request.urlopen("http://%s:%d/metrics" % (HOST, mport),
                                timeout=10) as r:
        text = r.read().decode()
    assert any(ln.startswith("relayd_identity_refused_total ") and
               float(ln.split()[1]) >= 1 for ln in text.splitlines()), text
    rc, js = put(origin, "id/impostor", os.urandom(4096), timeout=30)
    assert rc != 0, js
    assert impostor.store_files() == []


def test_configured_identity_is_accepted(make_relay, certs):
    other = make_relay("hop3", tls=certs.tls("hop3"), store=True)
    other.start()
    origin = make_relay("hop0", tls=certs.tls("hop0"),
                        peers=[{"name": "hop2", "address": other.address,
                                "identity": "hop3"}],
                        routes=[{"prefix": "", "hops": ["hop2"],
                                 "store": False}])
    origin.start()
    wait_for(lambda: (out_link(origin, "hop2") or {}).get("state") == "up",
             15, "hop0 -> hop2 (identity hop3) up")
    data = os.urandom(4096)
    rc, js = put(origin, "id/configured", data, timeout=30)
    assert rc == 0, js
    assert origin.stats()["identity_refused"] == 0


def tls_peer(relay, certs, cert_name, node):
    """A relaywire connection to relay over TLS with cert_name's
    certificate, sending HELLO as node."""
    raw = socket.create_connection((HOST, relay.port), timeout=10)
    s = certs.client_context(cert_name).wrap_socket(raw)
    c = W.PeerConn(HOST, relay.port, node=node, timeout=10)
    c.sock = s
    c.send_raw(W.enc_hello(node, 1 << 20, 1 << 20))
    return c


def frames_until_closed(c, timeout=10):
    got, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            got.append(c.read_frame(deadline))
        except (W.PeerClosed, ssl.SSLError, OSError):
            return got, True
        except W.PeerTimeout:
            break
    return got, False


def test_inbound_hello_must_match_the_certificate(make_relay, certs):
    relay = make_relay("hop1", tls=certs.tls("hop1"), store=True)
    relay.start()
    off = relay.log_size()
    c = tls_peer(relay, certs, "hop0", "hop5")
    try:
        got, closed = frames_until_closed(c)
    finally:
        c.close()
    assert closed, "relayd kept a link whose HELLO lies: %r" % got
    goaway = [f for f in got if f.type == W.GOAWAY]
    assert goaway and goaway[0].code == W.ABORT_PROTOCOL, got
    assert relay.stats()["identity_refused"] == 1
    wait_for(lambda: "HELLO node id hop5 is not the certificate's "
             "identity: certificate is not hop5: it names CN=hop0 DNS:hop0"
             in relay.log_since(off), 10, "the refusal in hop1's log")
    assert not [p for p in relay.status()["peers"]
                if p.get("name") == "hop5"]

    # The same certificate, honest about its name, is a peer.
    c = tls_peer(relay, certs, "hop0", "hop0")
    try:
        f = c.read_frame(time.monotonic() + 10)
        assert f.type == W.HELLO, f
        wait_for(lambda: any(p.get("name") == "hop0" and
                             p.get("state") == "up"
                             for p in relay.status()["peers"]), 10,
                 "hop1 to list hop0 up")
    finally:
        c.close()
    assert relay.stats()["identity_refused"] == 1
