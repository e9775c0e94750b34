"""relayctl reload (the unit's ExecReload) validates before it reloads.

Behaviour proved: a relay listening with TLS runs on a valid certificate;
its config is rewritten to name an expired certificate (or a not yet
valid one, or to carry a syntax error), and `relayctl reload` exits 1
with "FAIL:" and the reason at the config's file and line; the relay keeps
answering on its old generation, and a PUT into it is still stored.  Once
the config is good again, `relayctl reload` exits 0 with a new
generation.  relayd.service's ExecReload= is `relayctl ... reload`, so
`systemctl reload` fails the same way (a SIGHUP would not tell).
"""

import datetime
import os
import re

from conftest import (REPO, assert_stored, put, relayctl)
from tlsutil import make_dated_cert


def dated(relay, name, start_days, end_days):
    now = datetime.datetime.utcnow()
    return make_dated_cert(os.path.join(relay.dir, "pki"), name,
                           now + datetime.timedelta(days=start_days),
                           now + datetime.timedelta(days=end_days))


def reload(relay):
    r = relayctl(["reload"], timeout=15, socket_path=relay.socket)
    return r.returncode, r.stdout + r.stderr


def generation(relay):
    return relay.status()["generation"]


def test_reload_refuses_bad_certificate_keeps_old(make_relay):
    a = make_relay("reloader", store=True)
    a.tls = dated(a, "reloader", -1, 60)
    a.start()
    gen = generation(a)
    tls_line = a.config_text().splitlines().index(
        [ln for ln in a.config_text().splitlines()
         if ln.startswith("tls = ")][0]) + 1
    for label, nb, na, why in (("expired", -30, -1, "has expired"),
                               ("future", 1, 30, "is not valid yet")):
        a.tls = dated(a, "reloader-" + label, nb, na)
        a.write_config()
        rc, out = reload(a)
        assert rc == 1, "reload with a %s certificate: exit %d\n%s" % (
            label, rc, out)
        assert "FAIL: " in out and "%s:%d: tls: certificate %s %s" % (
            a.conf_path, tls_line, a.tls["cert"], why) in out, out
        assert generation(a) == gen, "a refused reload changed generation"
    rc, js = put(a, "after-refused-reload", b"still serving\n")
    assert rc == 0, js
    assert_stored(a, "after-refused-reload", b"still serving\n")
    a.tls = dated(a, "reloader-good", -1, 60)
    a.write_config()
    rc, out = reload(a)
    assert rc == 0 and re.search(r"OK generation \d+", out), out
    assert generation(a) > gen


def test_reload_refuses_syntax_error(make_relay):
    a = make_relay("syntax").start()
    gen = generation(a)
    with open(a.conf_path, "a") as f:
        f.write("max_payload = ;\n")
    line = a.config_text().count("\n") + 1
    rc, out = reload(a)
    assert rc == 1 and "%s:%d: syntax error" % (a.conf_path, line) in out, \
        out
    assert generation(a) == gen


def test_unit_reload_goes_through_relayctl():
    with open(os.path.join(REPO, "systemd", "relayd.service")) as f:
        unit = f.read()
    assert re.search(r"(?m)^ExecReload=@BINDIR@/relayctl -s "
                     r"/run/relayd/relayd\.sock reload$", unit), \
        "ExecReload= does not validate through relayctl reload"
    assert not re.search(r"(?m)^ExecReload=.*kill", unit)
