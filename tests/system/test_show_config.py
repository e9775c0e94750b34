"""relayctl show config shows every option relayd.conf can set.

Behaviour proved: the option names are taken from the option tables of
src/config.c (the top-level config_opts table and the `known` lists of the
tls, peer and route groups) and from the entries of relayd.conf(5); for a
relay whose config sets them, `relayctl -j show config` has a field of
that name for every top-level option, in the tls block, in each peer and
in each route, and the human form prints a line (or a table column) for
each.  A future option left out of `show config` fails this test, and so
does one the parser knows but the page does not document, or the other
way round.  The options once left out (metrics, drain_timeout,
max_output_buffer, output_timeout) are shown with their configured
values, and listen and metrics as host:port.
"""

import os
import re

from conftest import REPO, ctl_json, free_port, relayctl
from tlsutil import certs_fixture  # noqa: F401 (the `certs` fixture)


def read(*parts):
    with open(os.path.join(REPO, *parts)) as f:
        return f.read()


def table_options():
    """{group: set of option names}: "top", "tls", "peer", "route"."""
    src = read("src", "config.c")
    body = src[src.index("config_opts[] = {"):]
    body = body[:body.index("\n};")]
    opts = {"top": set(re.findall(r'\{\s*"([a-z_]+)",\s*config_set_',
                                  body))}
    for group, fn in (("tls", "config_tls_parse"),
                      ("peer", "config_peer_parse"),
                      ("route", "config_route_parse")):
        i = src.index("\n" + fn + "(")
        known = re.search(r"known\[\]\s*=\s*\{([^}]*)\}", src[i:i + 600])
        assert known, fn
        opts[group] = set(re.findall(r'"([a-z_]+)"', known.group(1)))
    return opts


def page_options():
    """The option names relayd.conf(5) documents with `.It Ic NAME No`."""
    return set(re.findall(r"(?m)^\.It Ic ([a-z_]+) No ",
                          read("man", "relayd.conf.5")))


def test_tables_and_page_agree():
    opts = table_options()
    assert len(opts["top"]) >= 30, opts
    every = set().union(*opts.values())
    assert every == page_options(), (every ^ page_options())


def test_show_config_has_every_option(make_relay, certs):
    opts = table_options()
    mport = free_port()
    relay = make_relay("cfg", tls=certs.tls("hop0", allow=["CN=hop1"]),
                       peers=[{"name": "p1", "address": "127.0.0.1:9",
                               "rate_limit": 1000, "identity": "hop1"}],
                       routes=[{"prefix": "a/", "hops": ["p1"],
                                "mode": "failover", "store": True}],
                       drain_timeout=3.5, output_timeout=7.25,
                       max_output_buffer=3 * 1024 * 1024,
                       extra='metrics = "127.0.0.1:%d";' % mport)
    relay.start()
    js = ctl_json(relay, "show", "config")
    c = js["config"]
    missing = sorted(opts["top"] - set(c))
    assert not missing, "show config leaves out %s" % missing
    assert set(c["tls"]) - {"enabled"} == opts["tls"], c["tls"]
    assert len(c["peers"]) == 1 and set(c["peers"][0]) == opts["peer"], c
    assert len(c["routes"]) == 1 and set(c["routes"][0]) == \
        opts["route"], c
    assert c["metrics"] == "127.0.0.1:%d" % mport
    assert (c["drain_timeout"], c["output_timeout"],
            c["max_output_buffer"]) == (3.5, 7.25, 3 * 1024 * 1024)
    assert c["listen"] == relay.address
    assert c["peers"][0]["identity"] == "hop1"

    r = relayctl(["show", "config"], socket_path=relay.socket)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    for k in sorted(opts["top"] - {"tls", "peers", "routes"}):
        assert re.search(r"(?m)^%s = \S" % k, out), (k, out)
    assert re.search(r"(?m)^tls \{$", out), out
    for k in sorted(opts["tls"]):
        assert re.search(r"(?m)^  %s = \S" % k, out), (k, out)
    assert re.search(r"(?m)^peers: 1$", out) and \
        re.search(r"(?m)^routes: 1$", out), out
    header = re.search(r"(?m)^  NAME\s.*$", out).group(0).split()
    for k in sorted(opts["peer"] - {"tls"}):
        col = "ADDRESS" if k == "address" else k.upper()
        assert col in header, (k, header)
    assert re.search(r"(?m)^  p1\s+127\.0\.0\.1:9\s+1000\s+yes\s+hop1$",
                     out), out
    assert 'metrics = "127.0.0.1:%d"' % mport in out
    assert "drain_timeout = 3.500" in out and \
        "output_timeout = 7.250" in out
