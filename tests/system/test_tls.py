"""TLS 1.3 with mutual certificate authentication on relayd's peer links.

Behaviours proved (DESIGN.md: "TLS 1.3 with mutual certificate
authentication is the default on peer links"), every relay configured with
a top-level `tls = { ca; cert; key; allow }` group from certificates made
by scripts/gen-certs (tlsutil.certs):

- a 10-hop PUT crosses TLS on every link and is stored intact; status
  describes each link's session (TLSv1.3, cipher, the peer certificate's
  subject and SHA-256 fingerprint, equal to what openssl computes), and a
  second PUT reuses the links without a new handshake;
- a listener refuses, with the reason logged and counted, a client without
  a certificate, with a certificate of another CA, with an expired
  certificate, with a valid certificate not on its allow-list, a TLS 1.2
  client, a plaintext peer, and a peer that never finishes the handshake
  (closed after handshake_timeout); the refused peer gets no relayd byte,
  and the daemon goes on relaying;
- `openssl s_client` (a third-party TLS 1.3 client) completes the mutual
  handshake and reads relayd's HELLO;
- a rate-limited link works over TLS;
- the stall scenario (upstream killed after the stream completed) behaves
  over TLS exactly as in plaintext: every downstream storing hop stores.
"""

import os
import re
import select
import socket
import ssl
import subprocess
import time

import pytest

import relaywire as rw
from conftest import (EXTRA_CONF, HOST, RELAYD, assert_stored, put, put_bg,
                      register,
                      kill_proc, results_by_node, wait_for)
from tlsutil import normalise_fingerprint, relay_tls
from tlsutil import certs_fixture  # noqa: F401 (the `certs` fixture)
import test_upstream_lost_after_complete as stall

if re.search(r"^\s*tls\s*[=:]", EXTRA_CONF, re.M):
    pytest.skip("RELAYD_TEST_EXTRA_CONF sets tls itself",
                allow_module_level=True)

SIZE = 259072                   # 253 KiB
STORERS = (5, 10)
REASONS = ("no_certificate", "unknown_ca", "expired", "not_allowed",
           "version", "not_tls", "timeout", "other")
FP_RX = re.compile(r"^sha256:[0-9a-fA-F]{64}$")
# How long a refused client waits for relayd to close the connection.
CLOSE_WAIT = 5.0
HANDSHAKE_TIMEOUT = 0.5


# ------------------------------------------------------------------ helpers

def tls_hop_opts(certs, n, per_hop=None, allow=None):
    """chain() hop_opts giving hop i the certificate of hop<i>."""
    per_hop = per_hop or {}
    out = {}
    for i in range(n + 1):
        kw = dict(per_hop.get(i, {}))
        kw.update(relay_tls(certs.tls("hop%d" % i,
                                      allow=(allow or {}).get(i))))
        out[i] = kw
    return out


def peers_of(relay, direction, state="up"):
    return [p for p in relay.status().get("peers") or []
            if p.get("direction") == direction and p.get("state") == state]


def wait_link_up(relay, peer_name, timeout=15):
    """hop relay's outbound link to peer_name, once it is up."""
    def up():
        for p in peers_of(relay, "out"):
            if p.get("name") == peer_name:
                return p
        return None
    return wait_for(up, timeout, "%s's link to %s to be up" %
                    (relay.name, peer_name), interval=0.05)


def check_session(p, cn, certs):
    """p (a status peer entry) has a TLS 1.3 session whose peer
    certificate is cn's."""
    t = p.get("tls")
    assert isinstance(t, dict), "peer %r has no tls object" % p
    assert t.get("version") == "TLSv1.3", t
    assert isinstance(t.get("cipher"), str) and t["cipher"], t
    assert re.search(r"CN\s*=\s*%s(?![\w.-])" % re.escape(cn),
                     t.get("subject") or ""), t
    fp = t.get("fingerprint") or ""
    assert FP_RX.match(fp), "fingerprint %r is not sha256:<64 hex>" % fp
    assert normalise_fingerprint(fp) == certs.fingerprint(cn), (
        "status fingerprint %s is not that of %s.pem (%s)"
        % (fp, cn, certs.fingerprint(cn)))


def handshakes(relay):
    v = relay.status().get("tls_handshakes")
    assert isinstance(v, int) and not isinstance(v, bool), (
        "%s: tls_handshakes %r is not an integer" % (relay.name, v))
    return v


def refused_counts(relay):
    v = relay.status().get("tls_refused")
    assert isinstance(v, dict), "%s: tls_refused %r" % (relay.name, v)
    missing = [k for k in REASONS if k not in v]
    assert not missing, "%s: tls_refused lacks %r: %r" % (relay.name,
                                                           missing, v)
    return {k: v[k] for k in REASONS}


def recv_until_closed(sock, timeout):
    """Read until EOF or a reset/TLS error; returns (bytes read, the error
    or None, seconds taken).  Fails the test if the connection is still
    open after timeout seconds."""
    t0 = time.monotonic()
    data, err = b"", None
    sock.settimeout(timeout)
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except TimeoutError:
        pytest.fail("relayd did not close the connection within %.1fs "
                    "(read %d bytes)" % (timeout, len(data)))
    except (ssl.SSLError, OSError) as e:
        err = e
    return data, err, time.monotonic() - t0


def tls_attempt(port, ctx):
    """Connect with ctx and read what relayd sends until it closes.
    Returns (the local port, application bytes received, error)."""
    raw = socket.create_connection((HOST, port), timeout=CLOSE_WAIT)
    local = raw.getsockname()[1]
    try:
        try:
            s = ctx.wrap_socket(raw)
        except (ssl.SSLError, OSError) as e:
            return local, b"", e
        try:
            data, err, _ = recv_until_closed(s, CLOSE_WAIT)
        finally:
            s.close()
        return local, data, err
    finally:
        raw.close()


def expect_refusal(relay, counter, reason, attempt):
    """Run attempt() (which returns the client's local port or None) and
    check that relay counted exactly one refusal, under counter, and logged
    `peer=ADDR [addr=ADDR] tls handshake refused reason="REASON..."`."""
    before = refused_counts(relay)
    off = relay.log_size()
    port = attempt()
    want = dict(before)
    want[counter] += 1
    wait_for(lambda: refused_counts(relay)[counter] >= want[counter],
             CLOSE_WAIT, "%s's tls_refused.%s to go up" % (relay.name,
                                                          counter))
    assert refused_counts(relay) == want, (
        "expected only tls_refused.%s to go up by one" % counter)
    # peer=NAME, then optional key=value fields (addr=ADDR); the client's
    # address is in one of them when its port is known.
    addr = r"(?=.*=127\.0\.0\.1:%d )" % port if port else ""
    rx = re.compile(r'%speer=\S+ (?:\w+=\S+ )*tls handshake refused '
                    r'reason="%s' % (addr, re.escape(reason)))
    wait_for(lambda: rx.search(relay.log_since(off)), CLOSE_WAIT,
             "%s to log %s" % (relay.name, rx.pattern))


def assert_still_serving(relays, tag):
    """A PUT into hop0 still reaches hop1 (the guarded relay) over TLS and
    is stored intact there."""
    hop0, hop1 = relays
    assert hop1.alive(), "%s exited" % hop1.name
    data = os.urandom(64 * 1024)
    key = "tls/after-%s" % tag
    rc, js = put(hop0, key, data)
    assert rc == 0, "PUT after the refusal: exit %d: %r" % (rc, js)
    assert results_by_node(js)["hop1"]["status"] == "stored", js
    assert_stored(hop1, key, data)


# ------------------------------------------------- 10 hops, session details

def test_ten_hops_over_tls_stored_and_sessions_described(chain, certs):
    """A 253 KiB PUT over hop0..hop10 with TLS on every link is stored
    intact at hop5 and hop10 only; hop1's status shows, for both its links,
    a TLSv1.3 session with a cipher, the peer certificate's subject (CN=hop0
    inbound, CN=hop2 outbound) and its SHA-256 fingerprint, equal to what
    openssl computes from hop0.pem/hop2.pem; a second PUT over the same
    links completes no new handshake on any relay (tls_handshakes
    unchanged)."""
    relays = chain(10, store=STORERS, hop_opts=tls_hop_opts(certs, 10))
    data = os.urandom(SIZE)
    key = "tls/chain10 #1"

    rc, js = put(relays[0], key, data)

    assert rc == 0, "relayctl put exit %d: %r" % (rc, js)
    assert js.get("ok") is True, js
    by_node = results_by_node(js)
    assert sorted(by_node) == sorted("hop%d" % i for i in range(11)), js
    for i, r in enumerate(relays):
        if i in STORERS:
            assert by_node[r.name]["status"] == "stored", by_node[r.name]
            assert_stored(r, key, data)
        else:
            assert r.store_files() == [], "%s stored %r" % (
                r.name, r.store_files())

    hop1 = relays[1]
    out = [p for p in peers_of(hop1, "out") if p.get("name") == "hop2"]
    assert len(out) == 1, hop1.status().get("peers")
    check_session(out[0], "hop2", certs)
    inbound = peers_of(hop1, "in")
    assert len(inbound) == 1, hop1.status().get("peers")
    check_session(inbound[0], "hop0", certs)

    counts = [handshakes(r) for r in relays]
    assert counts[1] >= 2, "hop1 completed %d handshakes, not its two " \
        "links" % counts[1]
    assert all(c >= 1 for c in counts), counts

    data2 = os.urandom(SIZE)
    key2 = "tls/chain10 #2"
    rc, js = put(relays[0], key2, data2)
    assert rc == 0, "second relayctl put exit %d: %r" % (rc, js)
    for i in STORERS:
        assert_stored(relays[i], key2, data2)
    assert [handshakes(r) for r in relays] == counts, (
        "the second PUT made new handshakes")


# ------------------------------------------------------------- refusals

@pytest.fixture
def guarded(chain, certs):
    """hop0 -> hop1 over TLS; hop1 stores, allows only CN=hop0, and has
    handshake_timeout 0.5.  Returns (hop0, hop1) once the link is up."""
    relays = chain(1, store=(1,), hop_opts=tls_hop_opts(
        certs, 1, per_hop={1: {"handshake_timeout": HANDSHAKE_TIMEOUT}},
        allow={1: ["CN=hop0"]}))
    wait_link_up(relays[0], "hop1")
    return relays


def refused_tls_client(relay, ctx):
    """An attempt with ctx that relay must refuse: relayd sends no
    application byte and closes the connection."""
    def attempt():
        port, data, err = tls_attempt(relay.port, ctx)
        assert data == b"", (
            "relayd sent %d application bytes (%r...) to a peer it "
            "refuses" % (len(data), data[:32]))
        return port
    return attempt


def tls12_client(hop1, certs):
    """`openssl s_client -tls1_2` with a valid certificate: its handshake
    fails (non-zero exit) and it reads no relayd HELLO."""
    def attempt():
        r = subprocess.run(
            ["openssl", "s_client", "-connect", hop1.address, "-tls1_2",
             "-CAfile", certs.ca, "-cert", certs.cert("client"),
             "-key", certs.key("client")],
            stdin=subprocess.DEVNULL, capture_output=True, timeout=15)
        assert r.returncode != 0, "a TLS 1.2 handshake succeeded: %s" % (
            r.stdout.decode("utf-8", "replace")[-400:])
        assert rw.MAGIC not in r.stdout
        return None
    return attempt


def plaintext_peer(hop1, certs):
    """The relayd protocol in clear (HELLO from the Python peer): closed,
    with no relayd HELLO sent in clear."""
    def attempt():
        conn = rw.PeerConn(HOST, hop1.port, node="plaintext").open_socket()
        try:
            port = conn.sock.getsockname()[1]
            conn.send_raw(rw.enc_hello("plaintext", 1 << 20, 1 << 20))
            data, _, _ = recv_until_closed(conn.sock, CLOSE_WAIT)
        finally:
            conn.close()
        assert rw.MAGIC not in data, "relayd answered in clear: %r" % data
        return port
    return attempt


def client_with(cert):
    """A TLS 1.3 client presenting cert (None: no certificate)."""
    return lambda hop1, certs: refused_tls_client(
        hop1, certs.client_context(cert))


# (test id, who connects, tls_refused counter, logged reason prefix)
REFUSALS = [
    # A TLS 1.3 client that presents no certificate.
    ("no-cert", client_with(None), "no_certificate", "no certificate"),
    # A client certificate signed by a CA hop1 does not trust (rogue).
    ("rogue", client_with("rogue"), "unknown_ca", "unknown CA"),
    # An expired client certificate of the right CA (old).
    ("expired", client_with("old"), "expired", "certificate expired"),
    # A valid certificate of the right CA (stranger) not on hop1's
    # allow-list (CN=hop0 only): refused before relayd sends its HELLO.
    ("stranger", client_with("stranger"), "not_allowed",
     "identity not allowed"),
    ("tls12", tls12_client, "version", "protocol version"),
    ("plaintext", plaintext_peer, "not_tls", "not TLS"),
]


@pytest.mark.parametrize("tag,client,counter,reason", REFUSALS,
                         ids=[r[0] for r in REFUSALS])
def test_refuses_peer(guarded, certs, tag, client, counter, reason):
    """hop1 refuses each client: counted once under its tls_refused
    counter and nowhere else, logged with its reason (and the client's
    address where its port is known), given no relayd byte; hop1 still
    relays afterwards (and hop0, allowed, still gets through)."""
    hop1 = guarded[1]
    expect_refusal(hop1, counter, reason, client(hop1, certs))
    assert_still_serving(guarded, tag)


def test_closes_stalled_handshake_after_timeout(guarded):
    """A peer that connects and sends nothing is closed by relayd once
    handshake_timeout (0.5 s) has passed, not before and not much later,
    and counted/logged as "handshake timeout"; hop1 still relays."""
    hop1 = guarded[1]
    took = []

    def attempt():
        s = socket.create_connection((HOST, hop1.port), timeout=CLOSE_WAIT)
        try:
            port = s.getsockname()[1]
            data, _, t = recv_until_closed(s, CLOSE_WAIT)
        finally:
            s.close()
        assert rw.MAGIC not in data, "relayd sent in clear: %r" % data
        took.append(t)
        return port
    expect_refusal(hop1, "timeout", "handshake timeout", attempt)
    assert took[0] >= HANDSHAKE_TIMEOUT * 0.8, (
        "closed after %.3fs, before handshake_timeout" % took[0])
    assert_still_serving(guarded, "timeout")


# ------------------------------------------------------ third-party client

def test_openssl_s_client_reads_relayd_hello(make_relay, certs):
    """`openssl s_client -tls1_3` with the CA and a client certificate
    verifies relayd's certificate (hop1, IP:127.0.0.1), completes the
    mutual handshake (hop1's tls_handshakes goes up by one) and the first
    bytes it prints decode as a HELLO frame from node hop1."""
    hop1 = make_relay("hop1", store=True,
                      **relay_tls(certs.tls("hop1"))).start()
    before = handshakes(hop1)
    proc = register(subprocess.Popen(
        ["openssl", "s_client", "-connect", hop1.address,
         "-CAfile", certs.ca, "-cert", certs.cert("client"),
         "-key", certs.key("client"), "-tls1_3", "-verify_return_error",
         "-verify_ip", "127.0.0.1", "-quiet"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE))
    try:
        buf = b""
        frame = None
        deadline = time.monotonic() + 10
        fd = proc.stdout.fileno()
        while frame is None:
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail("no whole frame from s_client within 10s: %r"
                            % buf)
            r, _, _ = select.select([fd], [], [], left)
            if not r:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            buf += chunk
            got = rw.decode(buf)
            if got is not None:
                frame = got[1]
        if frame is None:
            proc.wait(5)
            pytest.fail("s_client ended (exit %r) before a whole frame: "
                        "%r; stderr: %s" % (proc.returncode, buf,
                                            proc.stderr.read()[-1000:]))
        assert frame.type == rw.HELLO, frame
        assert frame.node == b"hop1", frame
        assert frame.version == rw.VERSION, frame
        wait_for(lambda: handshakes(hop1) == before + 1, 5,
                 "hop1's tls_handshakes to count s_client's handshake")
    finally:
        proc.stdin.close()
        kill_proc(proc, 2)


# ---------------------------------------------------- rate-limited link

def test_rate_limited_link_over_tls(chain, certs):
    """A peer link with a rate_limit comes up over TLS 1.3 and carries a
    PUT: hop0 -> hop1 limited to 256 KiB/s, 64 KiB stored intact at hop1
    (the stall scenario below depends on such a link)."""
    relays = chain(1, store=(1,), rate_limit={0: 256 << 10},
                   hop_opts=tls_hop_opts(certs, 1))
    check_session(wait_link_up(relays[0], "hop1", timeout=10), "hop1", certs)
    data = os.urandom(64 * 1024)
    rc, js = put(relays[0], "tls/rate-limited", data, timeout=30)
    assert rc == 0, "relayctl put exit %d: %r" % (rc, js)
    assert_stored(relays[1], "tls/rate-limited", data)


# ---------------------------------------------------------- stall over TLS

def test_upstream_killed_after_complete_over_tls(chain, certs):
    """The stall scenario of test_upstream_lost_after_complete with TLS on
    every link: hop2 holds the whole 512 KiB payload while its
    rate-limited fork to hop3 has most of it still to send, hop1 is
    killed -9, and every storing hop behind hop2 (hop6, hop10) still
    stores it intact; relayctl ends (0, or 1 naming hop1), no stream is
    left behind."""
    per_hop = {2: {"stream_window": 16 << 20, "conn_window": 32 << 20},
               3: {"stream_window": 64 << 10}}
    relays = chain(10, store=stall.STORERS, rate_limit={2: stall.RATE},
                   hop_opts=tls_hop_opts(certs, 10, per_hop=per_hop))
    # The links that matter are TLS 1.3 sessions before the PUT starts.
    for i in (1, 2):
        p = wait_link_up(relays[i], "hop%d" % (i + 1))
        check_session(p, "hop%d" % (i + 1), certs)
    data = os.urandom(stall.SIZE)
    key = "tls/lost-after-complete"
    bg = put_bg(relays[0], key, data, json=False)

    stall.wait_hop2_complete(relays, key)
    relays[1].kill9()

    stall.check_downstream(relays, key, data, bg, ["hop1"])


def test_bad_tls_material_is_a_config_error(make_relay, certs, tmp_path):
    """relayd -n refuses TLS material that cannot work, naming the file and
    line of the tls setting: a key that does not belong to the
    certificate, and a certificate file that is not a certificate."""
    bad = dict(certs.tls("hop1"))
    bad["key"] = certs.key("hop2")
    relay = make_relay("badkey", store=True, tls=bad)
    relay.write_config()
    r = subprocess.run([RELAYD, "-n", "-f", relay.conf_path],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1, r.stderr
    line = next(i for i, ln in enumerate(open(relay.conf_path), 1)
                if ln.startswith("tls = "))
    assert "%s:%d: tls: key %s does not match certificate" % (
        relay.conf_path, line, bad["key"]) in r.stderr, r.stderr

    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    bad = dict(certs.tls("hop1"))
    bad["cert"] = str(junk)
    relay = make_relay("badcert", store=True, tls=bad)
    relay.write_config()
    r = subprocess.run([RELAYD, "-n", "-f", relay.conf_path],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1, r.stderr
    assert "tls: cannot load certificate %s" % junk in r.stderr, r.stderr
