"""A reload is whole: outbound links take new certificates too.

hop0 dials hop1 over TLS.  hop0's certificate and key are replaced on
disk (same file names, a new certificate for the same name from the same
CA) and hop0 reloads.  Proven here, each from the other side's view:

- test_reload_outbound_new_cert: the link that is up keeps the old
  certificate (hop1 still sees the old fingerprint; hop0's `show peers`
  says generation 1) until it reconnects; after hop1 restarts, hop0's
  new link presents the new certificate (hop1 sees its fingerprint and
  its notAfter) and `show peers` says generation 2.  On the old code
  outbound contexts were never rebuilt, so the new link still presented
  the old certificate.
- test_reload_outbound_bad_key_refused: a new key that does not match
  the certificate makes the reload fail, and the next link still uses
  the old generation's context (it comes up).
"""

import datetime
import os
import shutil
import signal
import subprocess

from conftest import (assert_stored, ctl_json, put, wait_for)
from tlsutil import GEN_CERTS, normalise_fingerprint, openssl_fingerprint
from tlsutil import certs_fixture  # noqa: F401 (the `certs` fixture)

OPTS = {"connect_timeout": 1.0, "handshake_timeout": 2.0}


def link(relay, direction, name=None):
    """relay's link in that direction (to name, if given), or None."""
    for p in ctl_json(relay, "show", "peers")["peers"]:
        if p["direction"] == direction and p["state"] == "up" and (
                name is None or p["name"] == name):
            return p
    return None


def wait_link(relay, direction, name=None, cond=lambda p: True,
              timeout=15, what="link"):
    return wait_for(lambda: (lambda p: p if p and cond(p) else None)(
        link(relay, direction, name)), timeout,
        "%s: %s %s" % (relay.name, direction, what))


def own_cert(certs, relay, name):
    """A copy of name's certificate and key in the relay's directory, so
    the test can replace them without touching the session's files."""
    d = os.path.join(relay.dir, "tls")
    os.makedirs(d, exist_ok=True)
    cert, key = os.path.join(d, name + ".pem"), os.path.join(d, name + ".key")
    shutil.copyfile(certs.cert(name), cert)
    shutil.copyfile(certs.key(name), key)
    return cert, key


def new_cert(certs, root, name, days):
    """A fresh certificate and key for name from CA A, valid days days."""
    d = os.path.join(root, "newca")
    os.makedirs(d, exist_ok=True)
    for f in ("ca.pem", "ca.key"):
        shutil.copyfile(os.path.join(certs.dir_a, f), os.path.join(d, f))
    r = subprocess.run(["sh", GEN_CERTS, "-d", str(days), d, name],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return os.path.join(d, name + ".pem"), os.path.join(d, name + ".key")


def install(src, dst):
    tmp = dst + ".new"
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def not_after(pem):
    """The certificate's notAfter as show peers writes it."""
    r = subprocess.run(["openssl", "x509", "-noout", "-enddate", "-in",
                        pem], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r.stderr
    t = datetime.datetime.strptime(r.stdout.strip().split("=", 1)[1],
                                   "%b %d %H:%M:%S %Y %Z")
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def pair(make_relay, certs):
    hop1 = make_relay("hop1", store=True, tls=certs.tls("hop1"), **OPTS)
    hop0 = make_relay("hop0", peers=[{"name": "hop1", "relay": hop1}],
                      routes=[{"prefix": "", "hops": ["hop1"]}], **OPTS)
    cert, key = own_cert(certs, hop0, "hop0")
    hop0.tls = {"ca": certs.ca, "cert": cert, "key": key}
    hop1.start()
    hop0.start()
    return hop0, hop1, cert, key


def test_reload_outbound_new_cert(make_relay, certs, tmp_path):
    hop0, hop1, cert, key = pair(make_relay, certs)
    old_fp = certs.fingerprint("hop0")
    out = wait_link(hop0, "out", "hop1", what="link to hop1")
    inb = wait_link(hop1, "in")
    assert normalise_fingerprint(inb["tls"]["fingerprint"]) == old_fp
    assert out.get("generation") == 1, out
    assert out.get("cert_not_after") == not_after(certs.cert("hop1")), out

    ncert, nkey = new_cert(certs, str(tmp_path), "hop0", 3)
    new_fp = openssl_fingerprint(ncert)
    assert new_fp != old_fp
    install(ncert, cert)
    install(nkey, key)
    os.kill(hop0.proc.pid, signal.SIGHUP)
    wait_for(lambda: ctl_json(hop0, "status")["generation"] == 2, 10,
             "hop0 to take generation 2")

    # The link that is up keeps its context: old certificate, generation 1.
    inb = link(hop1, "in")
    assert normalise_fingerprint(inb["tls"]["fingerprint"]) == old_fp
    out = link(hop0, "out", "hop1")
    assert out is not None and out.get("generation") == 1, out
    assert out.get("config_generation") == 2, out
    rc, js = put(hop0, "before", b"b" * 1000, timeout=30)
    assert rc == 0, js
    assert_stored(hop1, "before", b"b" * 1000)

    # It reconnects: the new link presents the new certificate.
    hop1.stop()
    hop1.proc = None
    hop1.stop_rc = None
    hop1.start()
    inb = wait_link(hop1, "in", cond=lambda p: normalise_fingerprint(
        p["tls"]["fingerprint"]) == new_fp, what="link with hop0's new "
        "certificate (the old code kept presenting the old one)")
    out = wait_link(hop0, "out", "hop1", what="link to hop1 again")
    assert out["generation"] == 2, out
    assert inb["cert_not_after"] == not_after(ncert)
    assert 2 * 86400 < inb["cert_expires_in_s"] <= 3 * 86400 + 60, inb
    rc, js = put(hop0, "after", b"a" * 1000, timeout=30)
    assert rc == 0, js
    assert_stored(hop1, "after", b"a" * 1000)


def test_reload_outbound_bad_key_refused(make_relay, certs, tmp_path):
    hop0, hop1, cert, key = pair(make_relay, certs)
    wait_link(hop0, "out", "hop1", what="link to hop1")
    _, other_key = new_cert(certs, str(tmp_path), "hop0", 3)
    install(other_key, key)         # does not match cert any more
    r = ctl_json(hop0, "reload", rc=1)
    assert r["ok"] is False and r["generation"] == 1, r
    # The old generation's context (loaded before the key changed) stays:
    # a new link still comes up with the old certificate.
    hop1.stop()
    hop1.proc = None
    hop1.stop_rc = None
    hop1.start()
    out = wait_link(hop0, "out", "hop1", what="link to hop1 again")
    assert out["generation"] == 1
    inb = wait_link(hop1, "in")
    assert normalise_fingerprint(inb["tls"]["fingerprint"]) == \
        certs.fingerprint("hop0")
