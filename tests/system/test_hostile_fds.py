"""Hostile peers and clients cannot exhaust relayd's file descriptors.

Each relay here starts under the soft descriptor limit systemd gives a
service by default (1,024) and must raise it to the hard limit itself
(checked in /proc/PID/limits).  Then one attack each:

(a) thousands of TCP connections (as many as this process can open) that
    never send HELLO, from 200 source addresses;
(b) 1,500 storing PUT streams of one declared byte that never send DATA
    (no temp file is created for them), and PUTs over max_streams refused
    with ABORT limit;
(c) 1,100 idle control-socket clients;
(d) metrics clients that trickle their request header (slow-loris).

In each, relayd's descriptor count (/proc/PID/fd) stays under its cap
plus a fixed margin, a legitimate `relayctl put` stores byte-exact and
`relayctl status` answers, each within LEGIT_MAX seconds, the refusals
are counted in `relayctl -j show stats` (and Prometheus for (d)), and the
log line for a cap is rate-limited.
"""

import os
import resource
import select
import socket
import time

from conftest import (HOST, assert_stored, free_port, nfds, proc_value, put,
                      recv_all, relayctl, wait_for)
from relaywire import ABORT, PeerConn, enc_hello

LEGIT_MAX = 2.0         # seconds for a legitimate put or status
FD_MARGIN = 64          # listeners, epoll, store, log ... beyond the caps
SYSTEMD_SOFT = 1024     # the soft RLIMIT_NOFILE systemd gives by default
ATTACK_MAX = 19000      # connections one attacking process opens
SOURCES = 200           # 127.0.1.x, 127.0.2.x ... source addresses
LOG_LINES_MAX = 30      # "listener: closed" lines: at most ~1/s per cap


def lower_nofile():
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (SYSTEMD_SOFT, hard))


def raise_own_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return soft, hard


def soft_nofile(pid):
    return proc_value(pid, "limits", "Max open files")


def start(make_relay, name, extra=""):
    r = make_relay(name, store=True, extra=extra)
    r.start(preexec_fn=lower_nofile)
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert soft_nofile(r.proc.pid) == hard, (
        "relayd did not raise its soft descriptor limit from %d to %d"
        % (SYSTEMD_SOFT, hard))
    assert "descriptors: soft limit %d" % SYSTEMD_SOFT in r.log_text()
    return r


def legit_put(r, key, size=200000):
    """A relayctl put during the attack: stored byte-exact; its time."""
    data = os.urandom(size)
    t0 = time.monotonic()
    rc, js = put(r, key, data, timeout=60)
    elapsed = time.monotonic() - t0
    assert rc == 0, "legitimate put failed during the attack: %r" % (js,)
    assert_stored(r, key, data)
    return elapsed


def legit_status(r):
    t0 = time.monotonic()
    res = relayctl(["-j", "-s", r.socket, "status"], timeout=30)
    elapsed = time.monotonic() - t0
    assert res.returncode == 0, "status failed during the attack: %s%s" % (
        res.stdout, res.stderr)
    return elapsed


def cap_log_lines(r):
    return r.log_text().count("listener: closed")


def open_half_open(port, n):
    """n TCP connections to port that never send a byte, spread over
    SOURCES loopback addresses; stops early if this process runs out."""
    socks = []
    for i in range(n):
        src = "127.0.%d.%d" % (1 + (i % SOURCES) // 250, 1 + (i % SOURCES)
                               % 250)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind((src, 0))
            s.setblocking(False)
            s.connect_ex((HOST, port))
        except OSError:
            s.close()
            break
        socks.append(s)
    return socks


def test_half_open_connections(make_relay):
    """(a) Thousands of connections that never send HELLO."""
    _, hard = raise_own_nofile()
    r = start(make_relay, "a")
    pid = r.proc.pid
    base = nfds(pid)
    caps = r.stats()["descriptors"]["caps"]
    n = min(ATTACK_MAX, hard - nfds(os.getpid()) - 200)
    socks = []
    try:
        t0 = time.monotonic()
        socks = open_half_open(r.port, n)
        opened = time.monotonic() - t0
        assert len(socks) >= min(n, 2000), "opened only %d" % len(socks)
        peak = nfds(pid)
        put_s = legit_put(r, "legit-a")
        status_s = legit_status(r)
        peak = max(peak, nfds(pid))
        st = r.stats()["descriptors"]
        peak = max(peak, nfds(pid))
        refused = (st["refused"]["max_handshakes"] +
                   st["refused"]["max_connections_per_source"] +
                   st["refused"]["max_connections"])
        print("half-open: %d connections in %.1fs; relay fds base %d peak "
              "%d (handshake cap %d); put %.3fs, status %.3fs; refused %d"
              % (len(socks), opened, base, peak, caps["handshakes"],
                 put_s, status_s, refused))
        assert put_s < LEGIT_MAX, "put took %.2fs" % put_s
        assert status_s < LEGIT_MAX, "status took %.2fs" % status_s
        assert peak <= base + caps["handshakes"] + FD_MARGIN
        assert st["open"]["handshakes"] <= caps["handshakes"]
        assert refused > 0
        assert cap_log_lines(r) <= LOG_LINES_MAX
    finally:
        for s in socks:
            s.close()
    wait_for(lambda: r.stats()["descriptors"]["open"]["connections"] == 0,
             15, "the half-open connections to be gone")


def test_authenticated_flood(make_relay):
    """(a) Links that finish HELLO (plain TCP: anyone can) count against
    max_connections, not the handshake caps: the cap holds them."""
    raise_own_nofile()
    r = start(make_relay, "h", extra="max_connections = 300; max_handshakes = 600;")
    pid = r.proc.pid
    base = nfds(pid)
    conns = []
    try:
        for i in range(600):
            src = "127.0.%d.%d" % (1 + (i % SOURCES) // 250,
                                   1 + (i % SOURCES) % 250)
            pc = PeerConn(HOST, r.port, node="flood%d" % i, timeout=5)
            pc.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            pc.sock.settimeout(5)
            pc.sock.bind((src, 0))
            pc.sock.connect((HOST, r.port))
            pc.send_raw(enc_hello(pc.node, 1 << 20, 1 << 20))
            conns.append(pc)
        wait_for(lambda: r.stats()["descriptors"]["refused"]
                 ["max_connections"] >= 300, 10, "300 refusals")
        st = r.stats()["descriptors"]
        fds = nfds(pid)
        put_s = legit_put(r, "legit-h")
        status_s = legit_status(r)
        print("authenticated flood: 600 links, cap 300; open %d, relay fds "
              "base %d now %d; put %.3fs, status %.3fs"
              % (st["open"]["connections"], base, fds, put_s, status_s))
        assert st["open"]["connections"] == 300
        assert st["refused"]["max_connections"] == 300
        assert fds <= base + 300 + 8
        assert put_s < LEGIT_MAX and status_s < LEGIT_MAX
    finally:
        for pc in conns:
            pc.close()


def test_idle_storing_streams(make_relay):
    """(b) 1,500 storing streams of one byte that never send DATA."""
    raise_own_nofile()
    r = start(make_relay, "b")
    pid = r.proc.pid
    base = nfds(pid)
    conns = []
    try:
        for c in range(3):
            pc = PeerConn(HOST, r.port, node="idle%d" % c).connect()
            conns.append(pc)
            for i in range(500):
                pc.put("idle-%d-%d" % (c, i), b"x")
        wait_for(lambda: r.stats()["active_streams"] >= 1500, 20,
                 "1,500 streams admitted")
        fds = nfds(pid)
        tmp = len(r.temp_files())
        put_s = legit_put(r, "legit-b")
        status_s = legit_status(r)
        print("idle streams: 1500 open; relay fds base %d, with them %d; "
              "temp files %d; put %.3fs, status %.3fs"
              % (base, fds, tmp, put_s, status_s))
        assert tmp == 0, "%d temp files for streams that sent nothing" % tmp
        assert fds <= base + len(conns) + 8
        assert put_s < LEGIT_MAX, "put took %.2fs" % put_s
        assert status_s < LEGIT_MAX, "status took %.2fs" % status_s
    finally:
        for pc in conns:
            pc.close()


def test_max_streams(make_relay):
    """(b) A PUT over max_streams gets ABORT limit; the rest live on."""
    r = start(make_relay, "s", extra="max_streams = 100;")
    with PeerConn(HOST, r.port, node="many") as pc:
        pc.connect()
        sids = [pc.put("many-%d" % i, b"x") for i in range(150)]
        deadline = time.monotonic() + 10
        aborted = set()
        while len(aborted) < 50:
            f = pc.expect(lambda f: f.type == ABORT, deadline=deadline,
                          what="ABORT limit")
            assert f.code == 7, f    # WIRE_ABORT_LIMIT
            aborted.add(f.stream)
        assert aborted == set(sids[100:])
        st = r.stats()
        assert st["active_streams"] == 100
        assert st["descriptors"]["refused"]["max_streams"] == 50
        assert st["descriptors"]["open"]["streams"] == 100
        assert legit_put(r, "legit-s") < LEGIT_MAX
    wait_for(lambda: r.stats()["descriptors"]["open"]["streams"] == 0, 10,
             "the streams to be released")


def connect_unix(path, deadline):
    """A connected non-blocking Unix socket, retrying while the listen
    backlog is full; None once deadline passes."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.setblocking(False)
    while True:
        try:
            s.connect(path)
            return s
        except BlockingIOError:
            if time.monotonic() >= deadline:
                s.close()
                return None
            select.select([], [], [], 0.005)


def test_idle_control_clients(make_relay):
    """(c) 1,100 idle control clients: capped, timed out, status works."""
    raise_own_nofile()
    r = start(make_relay, "c", extra="control_request_timeout = 2.0;")
    pid = r.proc.pid
    base = nfds(pid)
    clients = []
    try:
        deadline = time.monotonic() + 10
        for _ in range(1100):
            s = connect_unix(r.socket, deadline)
            if s is None:
                break       # the relay stopped accepting (old code)
            clients.append(s)
        assert len(clients) == 1100, "relay stopped accepting"
        t_attack = time.monotonic()
        wait_for(lambda: r.stats()["descriptors"]["refused"]
                 ["max_control_clients"] >= 1000, 10,
                 "the flood to reach the control listener")
        peak = nfds(pid)
        status_s = legit_status(r)
        put_s = legit_put(r, "legit-c")
        peak = max(peak, nfds(pid))
        cap = r.stats()["descriptors"]["caps"]["control_clients"]
        print("idle control clients: %d; relay fds base %d peak %d (cap "
              "%d); status %.3fs, put %.3fs" % (len(clients), base, peak,
                                                cap, status_s, put_s))
        assert status_s < LEGIT_MAX, "status took %.2fs" % status_s
        assert put_s < LEGIT_MAX, "put took %.2fs" % put_s
        assert peak <= base + cap + 8
        # The ones still held are closed after the timeout (+ margin).
        wait_for(lambda: nfds(pid) <= base + 2, 2.0 + 3.0,
                 "idle control clients closed after the timeout")
        closed_after = time.monotonic() - t_attack
        st = r.stats()["descriptors"]
        assert st["refused"]["control_request_timeout"] >= 1
        print("idle control clients closed %.1fs after the flood"
              % closed_after)
        assert cap_log_lines(r) <= LOG_LINES_MAX
    finally:
        for s in clients:
            s.close()


def fetch_metrics(port):
    with socket.create_connection((HOST, port), timeout=10) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        return recv_all(s).decode()


def test_metrics_slowloris(make_relay):
    """(d) Slow-loris metrics clients: capped, timed out, scrapes work."""
    mport = free_port()
    r = start(make_relay, "d", extra='metrics = "%s:%d"; '
              'metrics_header_timeout = 1.5;' % (HOST, mport))
    pid = r.proc.pid
    base = nfds(pid)
    cap = r.stats()["descriptors"]["caps"]["metrics_clients"]
    slow = []
    try:
        for _ in range(200):
            s = socket.create_connection((HOST, mport), timeout=5)
            s.sendall(b"GET /metr")
            slow.append(s)
        t0 = time.monotonic()
        peak = nfds(pid)
        body = fetch_metrics(mport)
        scrape_s = time.monotonic() - t0
        assert body.startswith("HTTP/1.1 200"), body[:80]
        assert "relayd_listener_refused_total" in body
        # Trickle one more byte each: a read timeout would be reset by
        # this, the header timeout is not.
        deadline = time.monotonic() + 1.5 + 3.0
        while time.monotonic() < deadline and nfds(pid) > base + 1:
            for s in slow:
                try:
                    s.send(b"i")
                except OSError:
                    pass
            peak = max(peak, nfds(pid))
            time.sleep(max(0.0, min(0.2, deadline - time.monotonic())))
        held = nfds(pid) - base
        print("metrics slow-loris: 200 clients; relay fds base %d peak %d "
              "(cap %d); scrape %.3fs; left after header timeout %d"
              % (base, peak, cap, scrape_s, held))
        assert peak <= base + cap + 4
        assert held <= 1, "%d slow clients outlived the header timeout" % (
            held)
        assert scrape_s < LEGIT_MAX
        assert legit_status(r) < LEGIT_MAX
        body = fetch_metrics(mport)
        assert ('relayd_listener_refused_total{reason="max_metrics_clients"}'
                in body)
        m = [ln for ln in body.splitlines() if ln.startswith(
            'relayd_listener_refused_total{reason="metrics_header_timeout"}')]
        assert m and int(m[0].split()[-1]) >= 1, m
        assert cap_log_lines(r) <= LOG_LINES_MAX
    finally:
        for s in slow:
            s.close()
