"""The optional Prometheus endpoint (`metrics` in relayd.conf).

Behaviour proved: a relay with `metrics = "127.0.0.1:PORT"` that forwarded
and stored one PUT and refused one over max_payload answers GET /metrics
with the text exposition format (Content-Type text/plain; version=0.0.4),
which `promtool check metrics` accepts without a lint problem, and whose
values match what happened, on it and on its next hop: one PUT received,
stored locally and forwarded, one refused as too-large (every abort
reason has a series, zero or not), the payload bytes out here and in
there, the link up with its wire bytes, the duration histogram counting
the one finished stream (cumulative buckets, +Inf = _count), no stream in
flight and no bytes buffered.  Every field of `relayctl -j show stats`
is a series with the same value, and every series a field.  Other paths
answer
404, other methods 405 with Allow, HEAD answers headers only, a malformed
request gets 400, and a client that sends half a request does not stop
the relay from answering the next one.  A relay without the option opens
no TCP listener but its peer listener; an address already taken stops
start-up with a message naming the metrics address.
"""

import calendar
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

import relaywire as rw
from conftest import (HOST, RELAYD, REPO, assert_stored, free_port, put,
                      recv_all, require_binaries, wait_for)
from tlsutil import relay_tls
from tlsutil import certs_fixture  # noqa: F401 (the `certs` fixture)

# wire.h's abort codes by wire_abort_name(), and "unknown" for the rest.
ABORT_REASONS = {"protocol", "too-large", "upstream-lost", "timeout",
                 "loop", "no-route", "limit", "shutdown", "cancelled",
                 "internal", "size", "unknown"}
# tls.h's enum tls_refusal by tls_refusal_name().
TLS_REASONS = {"no_certificate", "unknown_ca", "expired", "not_allowed",
               "version", "not_tls", "timeout", "closed", "other"}
MAX_PAYLOAD = 4096

SAMPLE_RX = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL_RX = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def promtool():
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is missing (make deps installs prometheus)")
    return path


def parse(text):
    """{(name, ((label, value), ...)): float} of every sample; also checks
    that every sample's family has a # HELP and a # TYPE line."""
    samples, helped, typed = {}, set(), {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            helped.add(line.split()[2])
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            typed[name] = kind
        elif line and not line.startswith("#"):
            m = SAMPLE_RX.match(line)
            assert m, "not a sample line: %r" % line
            labels = tuple(sorted(LABEL_RX.findall(m.group(2) or "")))
            key = (m.group(1), labels)
            assert key not in samples, "duplicate series %r" % (key,)
            samples[key] = float(m.group(3))
    for name, _ in samples:
        family = re.sub(r"_(bucket|sum|count)$", "", name)
        if family not in typed:
            family = name
        assert family in typed and family in helped, \
            "%s has no # TYPE or # HELP line" % name
    return samples, typed


def value(samples, name, **labels):
    key = (name, tuple(sorted(labels.items())))
    assert key in samples, "no series %s%r" % (name, labels)
    return samples[key]


def label_values(samples, name, label):
    return {dict(lb)[label] for (n, lb) in samples if n == name}


def fetch(port, path="/metrics", method="GET"):
    """(status, headers, body) of one HTTP request."""
    req = urllib.request.Request("http://%s:%d%s" % (HOST, port, path),
                                 method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


def tcp_listen_ports(pid):
    """The TCP ports process pid listens on (its sockets in LISTEN state,
    from /proc/PID/fd and /proc/net/tcp{,6})."""
    inodes = set()
    fd_dir = "/proc/%d/fd" % pid
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(os.path.join(fd_dir, fd))
        except OSError:
            continue
        m = re.match(r"socket:\[(\d+)\]$", target)
        if m:
            inodes.add(m.group(1))
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                cols = line.split()
                if cols[3] == "0A" and cols[9] in inodes:
                    ports.add(int(cols[1].rsplit(":", 1)[1], 16))
    return ports


def metrics_relay(make_relay, **kw):
    port = free_port()
    r = make_relay(extra='metrics = "%s:%d";' % (HOST, port), **kw)
    return r, port


def scrape(port):
    """GET /metrics, checked by promtool; returns parse()'s result."""
    status, headers, body = fetch(port)
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    r = subprocess.run([promtool(), "check", "metrics"], input=body,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and not r.stdout.strip() and \
        not r.stderr.strip(), "promtool: exit %d\n%s%s" % (
            r.returncode, r.stdout, r.stderr)
    s, types = parse(body)
    assert all(n.startswith("relayd_") for n in types)
    return s, types


def check_histogram(s, types):
    """Cumulative buckets ending in +Inf == _count, which is the number of
    streams that finished on the relay (stored or failed)."""
    h = "relayd_stream_duration_seconds"
    assert types[h] == "histogram"
    buckets = sorted(((float(dict(lb)["le"]), v) for (n, lb), v in
                      s.items() if n == h + "_bucket"))
    assert len(buckets) >= 2 and buckets[-1][0] == float("inf")
    counts = [v for _, v in buckets]
    assert counts == sorted(counts), "buckets not cumulative: %r" % buckets
    assert buckets[-1][1] == value(s, h + "_count")
    assert value(s, h + "_count") == (
        value(s, "relayd_puts_stored_total") +
        value(s, "relayd_puts_relayed_total") +
        value(s, "relayd_puts_failed_total"))
    return value(s, h + "_count"), value(s, h + "_sum")


def check_reasons(s, types, refused):
    """Every abort reason has a series in each family; the refused ones
    (reason: count) are the only non-zero ones."""
    for fam in ("relayd_puts_refused_total", "relayd_streams_aborted_total",
                "relayd_forks_aborted_total"):
        assert types[fam] == "counter"
        assert label_values(s, fam, "reason") == ABORT_REASONS, fam
    for reason in ABORT_REASONS:
        assert value(s, "relayd_puts_refused_total", reason=reason) == \
            refused.get(reason, 0), reason
        assert value(s, "relayd_streams_aborted_total", reason=reason) == 0
        assert value(s, "relayd_forks_aborted_total", reason=reason) == 0
    assert label_values(s, "relayd_tls_handshake_failures_total",
                        "reason") == TLS_REASONS
    for reason in TLS_REASONS:
        assert value(s, "relayd_tls_handshake_failures_total",
                     reason=reason) == 0


def test_metrics_after_stored_and_refused_puts(make_relay):
    down, dport = metrics_relay(make_relay, name="down", store=True,
                                max_payload=MAX_PAYLOAD)
    down.start()
    up, uport = metrics_relay(
        make_relay, name="up", max_payload=MAX_PAYLOAD,
        peers=[{"name": "down", "relay": down}],
        routes=[{"prefix": "", "hops": ["down"], "store": True}])
    up.start()
    assert tcp_listen_ports(up.proc.pid) == {up.port, uport}

    data = bytes(range(256)) * 8                # 2048 bytes
    rc, js = put(up, "m/ok", data)
    assert rc == 0 and js and js.get("ok"), "put: %d %r" % (rc, js)
    assert_stored(up, "m/ok", data)
    assert_stored(down, "m/ok", data)
    rc, js = put(up, "m/big", b"z" * (MAX_PAYLOAD + 1))
    assert rc != 0, "a PUT over max_payload was accepted: %r" % (js,)
    assert not os.path.exists(up.stored_path("m/big"))

    # The origin: stored here and forwarded, one refused at admission.
    s, types = scrape(uport)
    assert value(s, "relayd_puts_received_total") == 1
    assert value(s, "relayd_puts_stored_total") == 1
    assert value(s, "relayd_puts_failed_total") == 0
    assert value(s, "relayd_puts_forwarded_total") == 1
    assert value(s, "relayd_stores_total", result="ok") == 1
    assert value(s, "relayd_stores_total", result="failed") == 0
    check_reasons(s, types, {"too-large": 1})
    assert value(s, "relayd_payload_bytes_total", direction="out") == \
        len(data)
    assert types["relayd_link_bytes_total"] == "counter"
    assert "relayd_link_bytes" not in types
    assert value(s, "relayd_link_bytes_total", peer="down",
                 direction="out") > len(data)
    assert value(s, "relayd_link_bytes_total", peer="down",
                 direction="in") > 0
    assert value(s, "relayd_puts_relayed_total") == 0
    assert value(s, "relayd_peers_up") == 1
    assert value(s, "relayd_peer_links") == 1
    assert value(s, "relayd_active_streams") == 0
    assert value(s, "relayd_buffered_bytes") == 0
    assert value(s, "relayd_tls_handshakes_total") == 0
    assert value(s, "relayd_uptime_seconds") > 0
    count, total = check_histogram(s, types)
    assert count == 1 and total > 0
    st = up.status()
    assert st["puts_received"] == value(s, "relayd_puts_received_total")
    assert st["puts_stored"] == value(s, "relayd_puts_stored_total")
    assert st["generation"] == value(s, "relayd_config_generation")

    # The next hop: the payload came in over the link and was stored.
    s, types = scrape(dport)
    assert value(s, "relayd_puts_received_total") == 1
    assert value(s, "relayd_puts_stored_total") == 1
    assert value(s, "relayd_puts_forwarded_total") == 0
    assert value(s, "relayd_stores_total", result="ok") == 1
    check_reasons(s, types, {})
    assert value(s, "relayd_payload_bytes_total", direction="in") == \
        len(data)
    assert value(s, "relayd_payload_bytes_total", direction="out") == 0
    assert value(s, "relayd_link_bytes_total", peer="up",
                 direction="in") > len(data)
    assert value(s, "relayd_peer_links") == 1
    assert value(s, "relayd_active_streams") == 0
    assert value(s, "relayd_buffered_bytes") == 0
    assert check_histogram(s, types)[0] == 1


# Where each `relayctl -j show stats` field is in the exposition: the JSON
# path, the series name, and its fixed label or, for an object of counts,
# the label its keys are the values of.  Written out here, not taken from
# the daemon, so that a name that moves on either surface fails.
STATS_SERIES = {
    "puts_received": ("relayd_puts_received_total", None),
    "puts_stored": ("relayd_puts_stored_total", None),
    "puts_relayed": ("relayd_puts_relayed_total", None),
    "puts_failed": ("relayd_puts_failed_total", None),
    "puts_forwarded": ("relayd_puts_forwarded_total", None),
    "stores_ok": ("relayd_stores_total", ("result", "ok")),
    "stores_failed": ("relayd_stores_total", ("result", "failed")),
    "results_refused": ("relayd_results_refused_total", None),
    "identity_refused": ("relayd_identity_refused_total", None),
    "puts_refused": ("relayd_puts_refused_total", "reason"),
    "streams_aborted": ("relayd_streams_aborted_total", "reason"),
    "forks_aborted": ("relayd_forks_aborted_total", "reason"),
    "payload_in": ("relayd_payload_bytes_total", ("direction", "in")),
    "payload_out": ("relayd_payload_bytes_total", ("direction", "out")),
    "active_streams": ("relayd_active_streams", None),
    "buffered": ("relayd_buffered_bytes", None),
    "peers_up": ("relayd_peers_up", None),
    "links": ("relayd_peer_links", None),
    "link_bytes.in": ("relayd_link_bytes_total", ("direction", "in"),
                      "peer"),
    "link_bytes.out": ("relayd_link_bytes_total", ("direction", "out"),
                       "peer"),
    "store.bytes": ("relayd_store_bytes", None),
    "store.reserved": ("relayd_store_reserved_bytes", None),
    "store.max_bytes": ("relayd_store_max_bytes", None),
    "build_info": ("relayd_build_info", "version"),
    "cert_expiry_s": ("relayd_cert_expiry_seconds", "cert"),
    "tls_handshakes": ("relayd_tls_handshakes_total", None),
    "tls_refused": ("relayd_tls_handshake_failures_total", "reason"),
    "descriptors.fd_limit": ("relayd_fd_limit", None),
    "descriptors.fd_reserve": ("relayd_fd_reserve", None),
    "descriptors.open": ("relayd_listener_open", "slot"),
    "descriptors.caps": ("relayd_listener_cap", "slot"),
    "descriptors.refused": ("relayd_listener_refused_total", "reason"),
    "memory.reserved": ("relayd_reserved_bytes", None),
    "memory.max_buffered": ("relayd_max_buffered_bytes", None),
    "memory.max_output_buffer": ("relayd_max_output_buffer_bytes", None),
    "memory.output_paused": ("relayd_output_bound_total",
                             ("action", "paused")),
    "memory.output_closed": ("relayd_output_bound_total",
                             ("action", "closed")),
    "memory.pongs_folded": ("relayd_pongs_folded_total", None),
    "memory.reserve_refused": ("relayd_reserve_refused_total", None),
    "memory.credit_overflow": ("relayd_link_protocol_closed_total",
                               ("reason", "credit_overflow")),
    "memory.data_never_opened": ("relayd_link_protocol_closed_total",
                                 ("reason", "data_never_opened")),
    "memory.data_discarded": ("relayd_data_discarded_bytes_total", None),
    "stream_durations": ("relayd_stream_duration_seconds_count", None),
    "uptime_s": ("relayd_uptime_seconds", None),
    "generation": ("relayd_config_generation", None),
}
# show stats fields that are objects of fields of their own.
SUBOBJECTS = ("memory", "descriptors", "link_bytes", "store")
# The stats call holds a control slot, the scrape a metrics slot.
OWN_SLOT = {("relayd_listener_open", (("slot", "control_clients"),)): -1,
            ("relayd_listener_open", (("slot", "metrics_clients"),)): 1}


def stats_leaves(st):
    """{(series name, labels): value} of every number in a show stats
    object, by STATS_SERIES; fails on a field it does not list."""
    out = {}
    for k, v in st.items():
        for sub, subv in (v.items() if k in SUBOBJECTS else [(None, v)]):
            path = k if sub is None else "%s.%s" % (k, sub)
            assert path in STATS_SERIES, \
                "show stats field %s has no Prometheus series" % path
            name, label = STATS_SERIES[path][:2]
            if len(STATS_SERIES[path]) == 3:
                # {item: n} with a fixed label besides the item's.
                key = STATS_SERIES[path][2]
                for item, n in subv.items():
                    out[(name, tuple(sorted((label, (key, item)))))] = n
            elif isinstance(label, str):
                assert isinstance(subv, dict), (path, subv)
                for item, n in subv.items():
                    out[(name, ((label, item),))] = n
            else:
                assert isinstance(subv, (int, float)), (path, subv)
                out[(name, (label,) if label else ())] = subv
    return out


def test_metrics_and_show_stats_agree(make_relay):
    """After a forwarded PUT and one refused as too large, every field of
    `relayctl -j show stats` on the origin has its Prometheus series with
    the same value (between the values of a stats call before and one
    after the scrape, so a link's PINGs cannot make it flaky; the slots
    the two calls hold themselves are allowed for), and every series but
    the histogram's buckets and sum is one of those fields."""
    down, _ = metrics_relay(make_relay, name="down", store=True)
    down.start()
    up, uport = metrics_relay(
        make_relay, name="up", max_payload=MAX_PAYLOAD,
        peers=[{"name": "down", "relay": down}],
        routes=[{"prefix": "", "hops": ["down"], "store": True}])
    up.start()
    data = os.urandom(3000)
    rc, js = put(up, "agree/ok", data)
    assert rc == 0 and js and js.get("ok"), "put: %d %r" % (rc, js)
    rc, js = put(up, "agree/big", b"z" * (MAX_PAYLOAD + 1))
    assert rc != 0, "a PUT over max_payload was accepted: %r" % (js,)

    before = stats_leaves(up.stats())
    s, types = scrape(uport)
    after = stats_leaves(up.stats())

    assert set(before) == set(after)
    assert before[("relayd_puts_received_total", ())] == 1
    assert before[("relayd_puts_refused_total",
                   (("reason", "too-large"),))] == 1
    assert before[("relayd_stores_total", (("result", "ok"),))] == 1
    assert before[("relayd_peers_up", ())] == 1
    for key in sorted(before):
        assert key in s, "show stats has %r, /metrics has no %s%r" % (
            before[key], key[0], key[1])
        lo, hi = sorted((before[key], after[key]))
        lo, hi = lo + OWN_SLOT.get(key, 0), hi + OWN_SLOT.get(key, 0)
        if isinstance(lo, float) or isinstance(hi, float):
            lo, hi = lo - 0.001, hi + 0.001
        assert lo <= s[key] <= hi, "%s%r: show stats %r then %r, " \
            "/metrics %r" % (key[0], key[1], before[key], after[key],
                             s[key])
    stray = [k for k in s if k not in before and not re.search(
        r"_(bucket|sum)$", k[0])]
    assert not stray, "/metrics series not in show stats: %r" % stray


def test_metrics_http_errors(make_relay):
    r, mport = metrics_relay(make_relay, name="m")
    r.start()
    for path in ("/", "/metricsx", "/metrics/", "/other"):
        status, _, _ = fetch(mport, path)
        assert status == 404, path
    for method in ("POST", "PUT", "DELETE"):
        status, headers, _ = fetch(mport, method=method)
        assert status == 405, method
        assert headers["Allow"] == "GET, HEAD"
    status, headers, body = fetch(mport, method="HEAD")
    assert status == 200 and body == ""
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    status, _, body = fetch(mport, "/metrics?x=1")
    assert status == 200 and "relayd_puts_received_total 0" in body

    # A client that sends half a request holds a connection, not the loop.
    stuck = socket.create_connection((HOST, mport), timeout=10)
    try:
        stuck.sendall(b"GET /metr")
        status, _, body = fetch(mport)
        assert status == 200 and "relayd_uptime_seconds" in body
        r.status()
    finally:
        stuck.close()

    # Garbage gets 400 and the relay keeps serving.
    with socket.create_connection((HOST, mport), timeout=10) as g:
        g.sendall(b"\x00\xff garbage \r\n\r\n")
        g.shutdown(socket.SHUT_WR)
        reply = recv_all(g)
    assert reply.startswith(b"HTTP/1.1 400"), reply[:80]
    assert fetch(mport)[0] == 200
    assert r.alive()


def test_metrics_off_by_default(make_relay):
    r = make_relay("plain", store=True)
    r.start()
    assert "metrics" not in r.config_text()
    assert tcp_listen_ports(r.proc.pid) == {r.port}
    assert "metrics on" not in r.log_text()


def test_metrics_address_in_use(make_relay):
    require_binaries(RELAYD)
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.bind((HOST, 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    try:
        r = make_relay("busy", extra='metrics = "%s:%d";' % (HOST, port))
        # Run directly: the fixture's Relay counts a non-zero exit under
        # valgrind as a failure, and here it is the point.
        p = subprocess.run([RELAYD, "-d", "-f", r.write_config()],
                           capture_output=True, text=True, timeout=30,
                           stdin=subprocess.DEVNULL, cwd=r.dir)
    finally:
        holder.close()
    assert p.returncode != 0
    assert "metrics %s:%d: Address already in use" % (HOST, port) in \
        p.stderr, p.stderr


# ------------------------------------------------- issue 15: metrics, right

def unescape_label(v):
    """A label value as the text format escapes it, decoded."""
    return re.sub(r'\\(.)', lambda m: "\n" if m.group(1) == "n"
                  else m.group(1), v)


def relayd_escape(b):
    """util_escape_field() of the bytes b (src/util.h), as peer.c names
    an inbound link after its HELLO."""
    out = []
    for c in b:
        if c == 0x5c:
            out.append("\\\\")
        elif c == 0x22:
            out.append('\\"')
        elif 0x20 < c < 0x7f:
            out.append(chr(c))
        else:
            out.append("\\x%02x" % c)
    return "".join(out)


def test_metrics_counters_are_counters_and_named_total(make_relay):
    """Every family typed counter ends in _total and every _total family
    is a counter; the old gauge relayd_link_bytes (which only counted up)
    is gone for relayd_link_bytes_total."""
    r, port = metrics_relay(make_relay, name="c", store=True)
    r.start()
    rc, js = put(r, "c/one", b"c" * 100)
    assert rc == 0, js
    _, types = scrape(port)
    for name, kind in types.items():
        assert (kind == "counter") == name.endswith("_total"), \
            "%s is a %s" % (name, kind)
    assert "relayd_link_bytes" not in types
    assert types["relayd_link_bytes_total"] == "counter"


def test_puts_stored_counts_only_what_was_stored_here(make_relay):
    """A relay that only forwards (its route does not store) and whose next
    hop stores: the PUT succeeds, but puts_stored stays 0 on the forwarder
    (it stored nothing) and puts_relayed is 1; the next hop, which stored,
    has puts_stored 1."""
    down, dport = metrics_relay(make_relay, name="down", store=True)
    down.start()
    up, uport = metrics_relay(
        make_relay, name="up", peers=[{"name": "down", "relay": down}],
        routes=[{"prefix": "", "hops": ["down"], "store": False}])
    up.start()
    data = os.urandom(1500)
    rc, js = put(up, "fwd/only", data)
    assert rc == 0 and js and js.get("ok"), "put: %d %r" % (rc, js)
    assert not os.path.exists(up.stored_path("fwd/only"))
    assert_stored(down, "fwd/only", data)
    s, _ = scrape(uport)
    assert value(s, "relayd_puts_stored_total") == 0
    assert value(s, "relayd_puts_relayed_total") == 1
    assert value(s, "relayd_stores_total", result="ok") == 0
    assert up.stats()["puts_stored"] == 0
    s, _ = scrape(dport)
    assert value(s, "relayd_puts_stored_total") == 1
    assert value(s, "relayd_puts_relayed_total") == 0


def test_link_bytes_by_peer_escaped_bounded_and_kept(make_relay):
    """Inbound links that say hostile node ids in HELLO (a quote, a
    backslash, a brace, a comma: a forged label): each gets its own
    relayd_link_bytes_total{peer=...} series with the name escaped, which
    promtool accepts; the bytes stay after the link closes (a counter);
    and a flood of made-up names keeps at most 64 peer values, the rest
    under "(other)"."""
    r, port = metrics_relay(make_relay, name="l", store=True)
    r.start()
    node = b'ev"il\\},peer="x'
    c = rw.PeerConn(HOST, r.port, node=node.decode(), timeout=10).connect()
    c.close()
    wait_for(lambda: r.stats()["links"] == 0, 5, "the link to close")
    s, _ = scrape(port)
    want = relayd_escape(node)
    peers = {unescape_label(v) for v in
             label_values(s, "relayd_link_bytes_total", "peer")}
    assert want in peers, (want, peers)
    raw = [v for v in label_values(s, "relayd_link_bytes_total", "peer")
           if unescape_label(v) == want][0]
    assert value(s, "relayd_link_bytes_total", peer=raw,
                 direction="in") > 0
    assert value(s, "relayd_link_bytes_total", peer=raw,
                 direction="out") > 0

    for i in range(70):
        c = rw.PeerConn(HOST, r.port, node="flood%02d" % i,
                        timeout=10).connect()
        c.close()
    wait_for(lambda: r.stats()["links"] == 0, 10, "the links to close")
    s, _ = scrape(port)
    peers = label_values(s, "relayd_link_bytes_total", "peer")
    assert len(peers) <= 64, len(peers)
    assert value(s, "relayd_link_bytes_total", peer="(other)",
                 direction="in") > 0
    assert value(s, "relayd_link_bytes_total", peer=raw,
                 direction="in") > 0


def makefile_version():
    with open(os.path.join(REPO, "Makefile")) as f:
        m = re.search(r"^VERSION\s*=\s*(\S+)", f.read(), re.M)
    assert m, "no VERSION in the Makefile"
    return m.group(1)


def test_relayd_V_and_build_info(make_relay):
    """relayd -V prints the Makefile's VERSION, the build options and the
    libevent, OpenSSL and libconfig versions and exits 0 without a config;
    relayd_build_info{version=...} 1 says the same version."""
    require_binaries(RELAYD)
    p = subprocess.run([RELAYD, "-V"], capture_output=True, text=True,
                       timeout=10, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr
    lines = dict(line.split(" ", 1) for line in p.stdout.splitlines())
    assert lines["relayd"] == makefile_version()
    assert "build-options" in lines
    sanitized = os.path.basename(os.path.dirname(RELAYD)) == "build-san"
    assert ("asan" in lines["build-options"]) == sanitized, lines
    assert re.match(r"2\.\d+\.\d+", lines["libevent"]), lines
    assert "OpenSSL 3" in lines["openssl"], lines
    assert re.match(r"\d+\.\d+", lines["libconfig"]), lines
    r, port = metrics_relay(make_relay, name="v")
    r.start()
    s, types = scrape(port)
    assert types["relayd_build_info"] == "gauge"
    assert value(s, "relayd_build_info", version=makefile_version()) == 1


def cert_not_after(pem):
    out = subprocess.run(["openssl", "x509", "-noout", "-enddate", "-in",
                          pem], capture_output=True, text=True,
                         timeout=30, check=True).stdout
    when = out.strip().split("=", 1)[1]
    return calendar.timegm(time.strptime(when, "%b %d %H:%M:%S %Y GMT"))


def test_cert_expiry_seconds(make_relay, certs):
    """With TLS, relayd_cert_expiry_seconds{cert="<its cert file>"} is the
    seconds left until that certificate's notAfter (as openssl reads it);
    without TLS there is no sample."""
    tls = certs.tls("hop1")
    r, port = metrics_relay(make_relay, name="hop1", **relay_tls(tls))
    r.start()
    s, types = scrape(port)
    assert types["relayd_cert_expiry_seconds"] == "gauge"
    left = value(s, "relayd_cert_expiry_seconds", cert=tls["cert"])
    want = cert_not_after(tls["cert"]) - time.time()
    assert want > 0 and abs(left - want) <= 5, (left, want)

    p, pport = metrics_relay(make_relay, name="plain")
    p.start()
    s, _ = scrape(pport)
    assert not [k for k in s if k[0] == "relayd_cert_expiry_seconds"]


def tls_refused(port):
    s, _ = scrape(port)
    return {reason: value(s, "relayd_tls_handshake_failures_total",
                          reason=reason) for reason in TLS_REASONS}


def test_plaintext_refusal_counted_under_its_reason(make_relay, certs):
    """On a TLS listener, a client that sends two plaintext bytes and
    closes is counted as not_tls, and one that closes without a byte as
    closed; neither is an "other" handshake failure."""
    r, port = metrics_relay(make_relay, name="hop1",
                            **relay_tls(certs.tls("hop1")))
    r.start()
    before = tls_refused(port)
    assert set(before.values()) == {0}
    with socket.create_connection((HOST, r.port), timeout=10) as c:
        c.sendall(b"ab")
        c.shutdown(socket.SHUT_WR)
        recv_all(c)
    wait_for(lambda: tls_refused(port)["not_tls"] == 1, 5,
             "the plaintext client to be counted")
    with socket.create_connection((HOST, r.port), timeout=10) as c:
        c.shutdown(socket.SHUT_WR)
        recv_all(c)
    wait_for(lambda: tls_refused(port)["closed"] == 1, 5,
             "the silent client to be counted")
    after = tls_refused(port)
    assert after == dict(before, not_tls=1, closed=1), after
