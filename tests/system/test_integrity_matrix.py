"""Byte-exact PUTs through every input path into every place a route
stores, on warm daemons whose store worker lags the input.

Runs only on the test build (make integrity: build-test, TEST_HOOKS=1):
every relay is started with RELAYD_TEST_STORE_DELAY_US, so its store
worker sleeps before each write and falls behind the input, and each
write request carries a digest of its bytes that the worker checks again
before and after writing (a chunk changed under the worker aborts the
relay).  The test checks the relays logged that the hooks are on, so it
cannot pass quietly on a build without them.

One test per (links, topology) starts its relays once and then runs
every (size, input) cell twice, each time under a fresh key, so the
second round meets a warm daemon: reused heap, chunks, store jobs.
Every storing relay's file is compared with the source with cmp(1).
$RELAYD_MATRIX_MAX_SIZE, if set, leaves out the sizes above it (make tsan
sets 8 MiB).

Topologies (the origin is relay a; the relays are named hop1, hop2 and
hop3 for a, b and c, the names their TLS certificates carry):
  depth0    a stores, no next hop
  depth1    a -> b, b stores
  fanout    a stores and fans out to b and c, which store
  failover  a -> [dead, c] in failover mode (dead: nothing listens), c stores
Inputs: relayctl put FILE, relayctl put - (a pipe), and a peer link (a
Python peer speaking the wire protocol to a).  The small sizes run in
every cell, the big ones in fewer: see SIZES.
"""

import os
import shutil
import subprocess
import tempfile
import time

import pytest

import relaywire as rw
from conftest import (HOST, RELAYCTL, Relay, free_port, parse_json_output,
                      results_by_node, store_key_filename, wait_for)
from tlsutil import certs_fixture  # noqa: F401  (the certs fixture)

KIB = 1024
MIB = 1024 * KIB
# Store worker delay per write request (one stream chunk, <= 64 KiB).
STORE_DELAY_US = 400
PUT_TIMEOUT = 120.0
ROUNDS = 2
# make tsan runs a cell with sizes up to 8 MiB (ThreadSanitizer is slow).
MAX_SIZE = int(os.environ.get("RELAYD_MATRIX_MAX_SIZE", str(1 << 62)))

# Relay names: tlsutil's CA A has certificates for hop0..hop10.
NAMES = {"a": "hop1", "b": "hop2", "c": "hop3"}
SMALL = [0, 1, 64 * KIB - 1, 64 * KIB + 1]
BIG = [4 * MIB + 1, 8 * MIB]
TOPOLOGIES = ["depth0", "depth1", "fanout", "failover"]
INPUTS = ["file", "pipe", "peer"]


def sizes_for(topology):
    """Small sizes everywhere, 4 MiB+1 and 8 MiB everywhere, 24 MiB where
    the origin itself stores, 64 MiB into a lone storing relay."""
    s = SMALL + BIG
    if topology in ("depth0", "fanout"):
        s.append(24 * MIB)
    if topology == "depth0":
        s.append(64 * MIB)
    return [n for n in s if n <= MAX_SIZE]


@pytest.fixture
def shm_root(request):
    """Relay directories on tmpfs: the throttle, not the disk, makes the
    store lag, and fsync of hundreds of MiB stays cheap."""
    base = "/dev/shm" if os.path.isdir("/dev/shm") else "/tmp"
    d = tempfile.mkdtemp(prefix="rlym", dir=base)
    relays = []
    yield d, relays
    problems = []
    for r in relays:
        r.terminate()
    for r in relays:
        try:
            r.stop()
        except Exception as e:
            problems.append("%s: stop failed: %s" % (r.name, e))
        problems += r.shutdown_problems()
    failed = any(getattr(request.node, "rep_" + w, None) is not None and
                 getattr(request.node, "rep_" + w).failed
                 for w in ("setup", "call"))
    if failed or problems:
        for r in relays:
            print("==== %s log tail ====\n%s" % (r.name, r.log_tail(80)))
    shutil.rmtree(d, ignore_errors=True)
    if problems and not failed:
        pytest.fail("; ".join(problems))


def build(topology, root, tls_for):
    """The relays of topology (not started): (origin, [storing relays])."""
    names = {"depth0": ["a"], "depth1": ["a", "b"],
             "fanout": ["a", "b", "c"], "failover": ["a", "c"]}[topology]
    ports = {n: free_port() for n in names}

    def peer(n):
        return {"name": NAMES[n], "address": "%s:%d" % (HOST, ports[n])}

    def relay(n, peers=(), hops=(), mode="fanout", store=False):
        return Relay(NAMES[n], root, port=ports[n], peers=peers,
                     routes=[{"prefix": "", "hops": [NAMES.get(h, h)
                                                     for h in hops],
                              "mode": mode, "store": store}],
                     tls=tls_for(NAMES[n]))

    if topology == "depth0":
        a = relay("a", store=True)
        return [a], a, [a]
    if topology == "depth1":
        b = relay("b", store=True)
        a = relay("a", peers=[peer("b")], hops=["b"])
        return [b, a], a, [b]
    if topology == "fanout":
        b = relay("b", store=True)
        c = relay("c", store=True)
        a = relay("a", peers=[peer("b"), peer("c")], hops=["b", "c"],
                  store=True)
        return [b, c, a], a, [a, b, c]
    # failover: the first hop never answers (nothing listens on its port).
    c = relay("c", store=True)
    dead = {"name": "dead", "address": "%s:%d" % (HOST, free_port())}
    a = relay("a", peers=[dead, peer("c")], hops=["dead", "c"],
              mode="failover")
    return [c, a], a, [c]


def payload_file(root, size, seed):
    path = os.path.join(root, "src-%d-%d" % (size, seed))
    with open(path, "wb") as f:
        left = size
        while left > 0:
            n = min(left, 4 * MIB)
            f.write(os.urandom(n))
            left -= n
    return path


def put_relayctl(origin, key, path, pipe):
    cmd = [RELAYCTL, "-j", "-s", origin.socket, "put", key,
           "-" if pipe else path]
    if pipe:
        # A real pipe, not a file on stdin: relayctl must read it as one.
        cat = subprocess.Popen(["cat", path], stdout=subprocess.PIPE)
        try:
            r = subprocess.run(cmd, stdin=cat.stdout, capture_output=True,
                               text=True, timeout=PUT_TIMEOUT)
        finally:
            cat.stdout.close()
            cat.wait(10)
    else:
        r = subprocess.run(cmd, stdin=subprocess.DEVNULL,
                           capture_output=True, text=True,
                           timeout=PUT_TIMEOUT)
    js = parse_json_output(r.stdout)
    assert r.returncode == 0 and js and js.get("ok"), \
        "relayctl put %s (%s) failed: rc=%d %s %s" % (
            key, "pipe" if pipe else "file", r.returncode, r.stdout,
            r.stderr)
    return {n: e["status"] for n, e in results_by_node(js).items()}


class TlsPeer(rw.PeerConn):
    """PeerConn over TLS with a client certificate."""

    def __init__(self, host, port, ctx, **kw):
        super().__init__(host, port, **kw)
        self.ctx = ctx

    def open_socket(self):
        super().open_socket()
        self.sock = self.ctx.wrap_socket(self.sock)
        return self


def put_peer(conn, key, path):
    with open(path, "rb") as f:
        data = f.read()
    sid = conn.put(key.encode(), data)
    conn.send_data(sid, data, deadline=time.monotonic() + PUT_TIMEOUT)
    conn.send_end(sid)
    f = conn.expect_stream_end(sid, deadline=time.monotonic() + PUT_TIMEOUT)
    assert f.type == rw.RESULT, "peer PUT %s ended with %r" % (key, f)
    return {(e.node.decode() if isinstance(e.node, bytes) else e.node):
            e.status_name for e in f.entries}


def cmp_stored(relay, key, path):
    stored = os.path.join(relay.store_dir, store_key_filename(key))
    assert os.path.exists(stored), "%s: no file for %s (store: %r)" % (
        relay.name, key, relay.store_files())
    r = subprocess.run(["cmp", path, stored], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, "%s: %s differs from its source: %s" % (
        relay.name, key, r.stdout + r.stderr)
    os.unlink(stored)


def run_matrix(topology, tls, shm_root, monkeypatch, certs):
    root, started = shm_root
    monkeypatch.setenv("RELAYD_TEST_STORE_DELAY_US", str(STORE_DELAY_US))
    tls_for = (lambda n: certs.tls(n)) if tls else (lambda n: None)
    relays, origin, storing = build(topology, root, tls_for)
    for r in relays:
        started.append(r)
        r.start()
    for r in relays:
        wait_for(lambda r=r: "store: test hooks on" in r.log_text(), 10,
                 "%s to log that the test hooks are on (build with "
                 "make integrity)" % r.name)

    if tls:
        ctx = certs.client_context("client")
        conn = TlsPeer(HOST, origin.port, ctx, node="client",
                       timeout=PUT_TIMEOUT)
    else:
        conn = rw.PeerConn(HOST, origin.port, node="client",
                           timeout=PUT_TIMEOUT)
    conn.connect()
    srcdir = os.path.join(root, "src")
    os.makedirs(srcdir)
    cells = 0
    try:
        for size in sizes_for(topology):
            path = payload_file(srcdir, size, 0)
            for rnd in range(ROUNDS):
                for inp in INPUTS:
                    key = "m/%s/%d/%s/%d" % (topology, size, inp, rnd)
                    if inp == "peer":
                        got = put_peer(conn, key, path)
                    else:
                        got = put_relayctl(origin, key, path, inp == "pipe")
                    for r in storing:
                        assert got.get(r.name) == "stored", \
                            "%s: %s not stored at %s: %r" % (
                                topology, key, r.name, got)
                        cmp_stored(r, key, path)
                    cells += 1
            os.unlink(path)
    finally:
        conn.close()
    want = len(sizes_for(topology)) * len(INPUTS) * ROUNDS
    assert cells == want
    for r in relays:
        assert r.alive(), "%s died during the matrix" % r.name
        assert r.temp_files() == [], "%s left temp files" % r.name


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_matrix_plain(topology, shm_root, monkeypatch, request):
    """Every size, input path and round stores byte-exact over plain
    links."""
    run_matrix(topology, False, shm_root, monkeypatch, None)


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_matrix_tls(topology, shm_root, monkeypatch, certs):
    """The same over TLS 1.3 on every link, the peer input included."""
    run_matrix(topology, True, shm_root, monkeypatch, certs)
