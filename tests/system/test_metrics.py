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

import os
import re
import shutil
import socket
import subprocess
import urllib.error
import urllib.request

import pytest

from conftest import (HOST, RELAYD, assert_stored, free_port, put, recv_all,
                      require_binaries)

# wire.h's abort codes by wire_abort_name(), and "unknown" for the rest.
ABORT_REASONS = {"protocol", "too-large", "upstream-lost", "timeout",
                 "loop", "no-route", "limit", "shutdown", "cancelled",
                 "internal", "size", "unknown"}
# tls.h's enum tls_refusal by tls_refusal_name().
TLS_REASONS = {"no_certificate", "unknown_ca", "expired", "not_allowed",
               "version", "not_tls", "timeout", "other"}
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
    assert types["relayd_link_bytes"] == "gauge"
    assert value(s, "relayd_link_bytes", direction="out") > len(data)
    assert value(s, "relayd_link_bytes", direction="in") > 0
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
    assert value(s, "relayd_link_bytes", direction="in") > len(data)
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
    "link_bytes_in": ("relayd_link_bytes", ("direction", "in")),
    "link_bytes_out": ("relayd_link_bytes", ("direction", "out")),
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
# The stats call holds a control slot, the scrape a metrics slot.
OWN_SLOT = {("relayd_listener_open", (("slot", "control_clients"),)): -1,
            ("relayd_listener_open", (("slot", "metrics_clients"),)): 1}


def stats_leaves(st):
    """{(series name, labels): value} of every number in a show stats
    object, by STATS_SERIES; fails on a field it does not list."""
    out = {}
    for k, v in st.items():
        for sub, subv in (v.items() if k in ("memory", "descriptors")
                          else [(None, v)]):
            path = k if sub is None else "%s.%s" % (k, sub)
            assert path in STATS_SERIES, \
                "show stats field %s has no Prometheus series" % path
            name, label = STATS_SERIES[path]
            if isinstance(label, str):
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
