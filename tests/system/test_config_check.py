"""relayd -n checks a config: 0 for a good one, "FILE:LINE:" and 1 for a bad one.

Behaviour proved: `relayd -n -f FILE` accepts the shipped conf/relayd.conf
and every conf/examples/*.conf once the TLS files they name exist (copies
in a temporary directory, with a throwaway CA and certificate made by
openssl), and the configs the system-test fixtures generate, plaintext
and with a tls group (so the fixtures speak the config.h syntax); it exits
0 without starting a daemon or creating its control socket.  The shipped
file as it is, where /etc/relayd/tls/ is missing, is refused only for its
unreadable TLS files.  For a config with one mistake (syntax error, unknown
setting, out-of-range value, 64-bit integer without L, unknown peer in a
route, bad mode, over-long node_id, missing node_id, a listener or a peer
without tls, tls = true, a bad allow entry) it exits 1 and names the file
and line of the mistake.
"""

import datetime
import glob
import os
import re
import shutil
import socket
import subprocess
import tempfile

import pytest

from conftest import (RELAYD, REPO, HOST, Relay, conf_tls, free_port,
                      host_local, require_binaries)
from tlsutil import make_dated_cert


def check(path):
    require_binaries(RELAYD)
    return subprocess.run([RELAYD, "-n", "-f", path], capture_output=True,
                          text=True, timeout=20, stdin=subprocess.DEVNULL)


SHIPPED = [os.path.join(REPO, "conf", "relayd.conf")] + sorted(
    glob.glob(os.path.join(REPO, "conf", "examples", "*.conf")))

# The tls block of conf/relayd.conf; scripts/demo rewrites these lines.
SHIPPED_TLS_RX = re.compile(r'^\t(ca|cert|key) = "([^"]*)";$', re.M)


@pytest.fixture(scope="module")
def tls_material(tmp_path_factory):
    """A throwaway CA and one certificate and key it signed (PEM files)."""
    d = tmp_path_factory.mktemp("tls")
    ca_key, ca, key, csr, cert = (str(d / n) for n in (
        "ca.key", "ca.pem", "relay.key", "relay.csr", "relay.pem"))

    def openssl(*args):
        r = subprocess.run(["openssl"] + list(args), capture_output=True,
                           text=True, timeout=60, stdin=subprocess.DEVNULL)
        assert r.returncode == 0, "openssl %s: %s" % (args[0], r.stderr)

    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", ca_key,
            "-out", ca, "-days", "2", "-subj", "/CN=relayd test CA")
    openssl("req", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key,
            "-out", csr, "-subj", "/CN=relay1")
    openssl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key,
            "-CAcreateserial", "-out", cert, "-days", "2")
    return {"ca": ca, "cert": cert, "key": key}


def tls_role(name):
    """Which of ca, cert or key a TLS file name in the examples stands for."""
    base = os.path.basename(name)
    if base.endswith(".key"):
        return "key"
    return "ca" if "ca" in base.split(".")[0].split("-") else "cert"


def shipped_copy(path, dst, tls):
    """A copy of a shipped config in dst whose TLS files exist: the paths
    of conf/relayd.conf's tls block are replaced (as scripts/demo does);
    an example's relative "tls/..." files are made next to the copy."""
    with open(path) as f:
        text = f.read()
    if os.path.basename(path) == "relayd.conf":
        assert "\ntls = {\n" in text and [m.group(1) for m in
            SHIPPED_TLS_RX.finditer(text)] == ["ca", "cert", "key"], \
            "conf/relayd.conf lost the shape of its tls block"
        text = SHIPPED_TLS_RX.sub(
            lambda m: '\t%s = "%s";' % (m.group(1), tls[m.group(1)]), text)
    else:
        for rel in set(re.findall(r'"(tls/[^"]+)"', text)):
            os.makedirs(os.path.join(dst, os.path.dirname(rel)),
                        exist_ok=True)
            shutil.copy(tls[tls_role(rel)], os.path.join(dst, rel))
    out = os.path.join(dst, os.path.basename(path))
    with open(out, "w") as f:
        f.write(host_local(text, dst))
    return out


@pytest.mark.parametrize("path", SHIPPED,
                         ids=[os.path.relpath(p, REPO) for p in SHIPPED])
def test_shipped_config_is_accepted(path, tmp_path, tls_material):
    assert os.path.exists(path), "%s is missing" % path
    copy = shipped_copy(path, str(tmp_path), tls_material)
    r = check(copy)
    assert r.returncode == 0, "exit %d:\n%s%s" % (r.returncode, r.stdout,
                                                  r.stderr)


def test_shipped_config_names_missing_tls_files():
    path = os.path.join(REPO, "conf", "relayd.conf")
    with open(path) as f:
        text = f.read()
    lines = {m.group(2): text[:m.start()].count("\n") + 1
             for m in SHIPPED_TLS_RX.finditer(text)}
    missing = [p for p in lines if not os.access(p, os.R_OK)]
    if not missing:
        pytest.skip("the TLS files of conf/relayd.conf exist here")
    r = check(path)
    out = (r.stdout + r.stderr).strip()
    assert r.returncode == 1, out
    for p in missing:
        assert "%s:%d: tls: cannot read" % (path, lines[p]) in out and \
            " %s: " % p in out, "no error for %s in:\n%s" % (p, out)
    errors = [ln for ln in out.splitlines() if ln.startswith(path + ":")]
    assert len(errors) == len(missing), out


def test_generated_configs_are_accepted(tmp_path, tls_material):
    root = str(tmp_path)
    b = Relay("hopB", root, store=True, max_payload=5 << 30,
              max_buffered=1 << 33, stream_inactivity_timeout=0.5)
    a = Relay("hopA", root, port=None, stream_window=16 << 20,
              conn_window=32 << 20, max_streams_per_peer=4096,
              peers=[{"name": "hopB", "relay": b, "rate_limit": 65536},
                     {"name": "hopC", "address": "%s:1" % HOST}],
              routes=[{"prefix": "", "hops": ["hopB"], "store": False},
                      {"prefix": "fail/", "hops": ["hopC", "hopB"],
                       "mode": "failover", "store": True}])
    fp = subprocess.run(["openssl", "x509", "-noout", "-fingerprint",
                         "-sha256", "-in", tls_material["cert"]],
                        capture_output=True, text=True, timeout=30)
    assert fp.returncode == 0, fp.stderr
    tls = dict(tls_material, allow=["CN=hopA", "sha256:" +
                                    fp.stdout.strip().split("=", 1)[1]])
    c = Relay("hopC", root, tls=tls,
              peers=[{"name": "hopB", "relay": b, "tls": False},
                     {"name": "hopA", "relay": a}],
              routes=[{"prefix": "", "hops": ["hopB", "hopA"]}])
    assert "tls = false;" in a.config_text()
    assert "tls = {" in c.config_text()
    for relay in (a, b, c):
        r = check(relay.write_config())
        assert r.returncode == 0, "%s exit %d:\n%s%s\n--- config:\n%s" % (
            relay.name, r.returncode, r.stdout, r.stderr,
            relay.config_text())
        assert not os.path.exists(relay.socket), \
            "relayd -n created the control socket"


GOOD_HEAD = '''node_id = "check1";
listen = "127.0.0.1:7400";
control_socket = "/tmp/relayd-check-never.sock";
store_dir = "/tmp/relayd-check-never-store";
tls = false;
'''
NO_TLS_HEAD = '''node_id = "check1";
control_socket = "/tmp/relayd-check-never.sock";
store_dir = "/tmp/relayd-check-never-store";
'''

# (name, text, line of the mistake)
BAD = [
    ("syntax", GOOD_HEAD + "max_payload = ;\n", 6),
    ("unknown_setting", GOOD_HEAD + "frobnicate = 1;\n", 6),
    ("inactivity_too_small",
     GOOD_HEAD + "idle_timeout = 60.0;\nstream_inactivity_timeout = 0.05;\n",
     7),
    ("int64_without_L", GOOD_HEAD + "max_payload = 5000000000;\n", 6),
    ("unknown_peer",
     GOOD_HEAD + 'peers = (\n  { name = "p1"; address = "127.0.0.1:7401"; }'
     '\n);\nroutes = (\n  { prefix = "";\n    hops = [ "nosuch" ];\n'
     '    store = false; }\n);\n', 11),
    ("bad_mode",
     GOOD_HEAD + 'peers = ( );\nroutes = (\n  { prefix = "";\n'
     '    mode = "roundrobin";\n    store = true; }\n);\n', 9),
    ("node_id_too_long",
     'listen = "127.0.0.1:7400";\ntls = false;\nnode_id = "%s";\n'
     % ("n" * 65), 3),
    ("listener_without_tls", NO_TLS_HEAD + 'listen = "127.0.0.1:7400";\n', 4),
    ("peer_without_tls",
     NO_TLS_HEAD + 'peers = (\n  { name = "p1"; address = "127.0.0.1:7401";'
     ' tls = false; },\n  { name = "p2";\n    address = "127.0.0.1:7402"; }'
     '\n);\n', 6),
    ("tls_true", NO_TLS_HEAD + "tls = true;\n", 4),
    ("tls_file_missing",
     NO_TLS_HEAD + 'tls = {\n  ca = "/nonexistent/ca.pem";\n'
     '  cert = "/nonexistent/cert.pem";\n  key = "/nonexistent/key.pem";\n'
     '};\n', 6),
    ("tls_bad_allow",
     GOOD_HEAD + 'peers = (\n  { name = "p1"; address = "127.0.0.1:7401";\n'
     '    tls = { ca = "/nonexistent/ca.pem"; cert = "/nonexistent/c.pem";'
     ' key = "/nonexistent/k.pem";\n      allow = [ "sha256:12:34" ]; }; }\n'
     ');\n', 9),
]


@pytest.mark.parametrize("name,text,line", BAD, ids=[b[0] for b in BAD])
def test_bad_config_names_file_and_line(tmp_path, name, text, line):
    path = str(tmp_path / ("%s.conf" % name))
    with open(path, "w") as f:
        f.write(text)
    r = check(path)
    out = r.stdout + r.stderr
    assert r.returncode == 1, "exit %d for %s:\n%s" % (r.returncode, name,
                                                       out)
    assert "%s:%d:" % (path, line) in out, (
        "no '%s:%d:' in the messages:\n%s" % (path, line, out))


def test_missing_node_id_is_refused(tmp_path):
    path = str(tmp_path / "no-node.conf")
    with open(path, "w") as f:
        f.write('listen = "127.0.0.1:7400";\n')
    r = check(path)
    assert r.returncode == 1, r
    assert path + ":" in r.stdout + r.stderr, r.stdout + r.stderr


# ---------------------------------------------------------------- the host
#
# relayd -n also judges the config against this host: its own certificate
# must be valid now (a warning under 14 days), its key must match it, the
# listen and metrics addresses must be bindable and store_dir writable.

def host_config(d, tls_text, extra=""):
    """A config in directory d with a listener and tls_text as its tls;
    returns (path, line of `tls`)."""
    os.makedirs(os.path.join(d, "store"), exist_ok=True)
    head = ('node_id = "check1";\n'
            'listen = "%s:%d";\n'
            'control_socket = "%s";\n'
            'store_dir = "%s";\n' % (HOST, free_port(),
                                     os.path.join(d, "ctl.sock"),
                                     os.path.join(d, "store")))
    path = os.path.join(d, "relayd.conf")
    with open(path, "w") as f:
        f.write(head + extra + "tls = %s;\n" % tls_text)
    return path, head.count("\n") + extra.count("\n") + 1


def dated(tmp_path, name, start_days, end_days):
    now = datetime.datetime.utcnow()
    return make_dated_cert(str(tmp_path / "pki"), name,
                           now + datetime.timedelta(days=start_days),
                           now + datetime.timedelta(days=end_days))


CERT_CASES = [
    # (name, days from now to not_before, to not_after, exit, message)
    # (message a regular expression)
    ("expired", -30, -1, 1, r"has expired: not after \d{4}-"),
    ("not_yet_valid", 1, 60, 1, r"is not valid yet: not before \d{4}-"),
    ("expires_in_5_days", -30, 5, 0, r"expires in [45] days \d+ hours"),
    ("valid_60_days", -1, 60, 0, None),
]


@pytest.mark.parametrize("name,nb,na,rc,msg", CERT_CASES,
                         ids=[c[0] for c in CERT_CASES])
def test_own_certificate_validity(tmp_path, name, nb, na, rc, msg):
    tls = dated(tmp_path, "relay1", nb, na)
    path, line = host_config(str(tmp_path), conf_tls(tls))
    r = check(path)
    out = r.stdout + r.stderr
    assert r.returncode == rc, "exit %d for %s:\n%s" % (r.returncode, name,
                                                       out)
    if msg is None:
        assert "expires in" not in out and "tls:" not in out, out
        return
    want = "%s:%d: tls: certificate %s " % (path, line, tls["cert"])
    assert re.search(re.escape(want) + msg, out), \
        "no %r%s in:\n%s" % (want, msg, out)


def test_key_not_matching_certificate(tmp_path):
    tls = dated(tmp_path, "relay1", -1, 60)
    other = dated(tmp_path, "relay2", -1, 60)
    path, line = host_config(str(tmp_path), conf_tls(
        dict(tls, key=other["key"])))
    r = check(path)
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert "%s:%d: tls: key %s does not match certificate %s" % (
        path, line, other["key"], tls["cert"]) in out, out


@pytest.mark.parametrize("setting", ["listen", "metrics"])
def test_address_in_use(tmp_path, setting):
    taken = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        taken.bind((HOST, 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        d = str(tmp_path)
        path, _ = host_config(d, "false")
        with open(path) as f:
            text = f.read()
        if setting == "listen":
            text = re.sub(r'listen = "[^"]*"', 'listen = "%s:%d"' % (
                HOST, port), text)
        else:
            text += 'metrics = "%s:%d";\n' % (HOST, port)
        with open(path, "w") as f:
            f.write(text)
        line = text[:text.index(setting + " =")].count("\n") + 1
        r = check(path)
    finally:
        taken.close()
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert "%s:%d: %s: cannot bind %s:%d: Address already in use" % (
        path, line, setting, HOST, port) in out, out
    # The same file passes once the port is free again.
    r = check(path)
    assert r.returncode == 0, r.stdout + r.stderr


def set_store_dir(path, store):
    with open(path) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(re.sub(r'store_dir = "[^"]*"', 'store_dir = "%s"' % store,
                       text))


def test_store_dir_missing(tmp_path):
    """A store_dir that cannot be made (under a file here) is refused;
    one whose missing parents can be made is not: start makes them."""
    path, _ = host_config(str(tmp_path), "false")
    afile = str(tmp_path / "afile")
    write(afile, "not a directory\n")
    gone = os.path.join(afile, "store")
    set_store_dir(path, gone)
    r = check(path)
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert ("%s:4: store_dir: %s: missing, and cannot be made in %s: Not a "
            "directory" % (path, gone, afile)) in out, out
    set_store_dir(path, str(tmp_path / "no" / "such" / "store"))
    r = check(path)
    assert r.returncode == 0, r.stdout + r.stderr


def test_store_dir_made_at_start(make_relay):
    """What -n accepts, start does: missing parents of store_dir are
    made (mode 0750)."""
    a = make_relay("nested", store=True)
    a.store_dir = os.path.join(a.dir, "state", "relayd", "store")
    a.start()
    assert os.path.isdir(a.store_dir)
    assert os.stat(os.path.join(a.dir, "state")).st_mode & 0o777 == 0o750
    assert a.status()["node"] == "nested"


NOBODY = 65534


def test_store_dir_not_writable():
    """As an unprivileged user (root may write anywhere): a store_dir it
    cannot write is refused, one it can is accepted."""
    require_binaries(RELAYD)
    d = tempfile.mkdtemp(prefix="rlyck", dir="/tmp")
    try:
        os.chmod(d, 0o755)
        relayd = os.path.join(d, "relayd")
        shutil.copy(RELAYD, relayd)
        store = os.path.join(d, "store")
        os.mkdir(store)
        path = os.path.join(d, "relayd.conf")
        with open(path, "w") as f:
            f.write('node_id = "check1";\ncontrol_socket = "%s/ctl.sock";\n'
                    'store_dir = "%s";\ntls = false;\n' % (d, store))
        os.chmod(path, 0o644)

        def run():
            return subprocess.run(
                [relayd, "-n", "-f", path], capture_output=True, text=True,
                timeout=20, stdin=subprocess.DEVNULL,
                preexec_fn=lambda: (os.setgid(NOBODY), os.setuid(NOBODY)))
        os.chmod(store, 0o555)
        r = run()
        out = r.stdout + r.stderr
        assert r.returncode == 1, out
        assert "%s:3: store_dir: %s: not writable: Permission denied" % (
            path, store) in out, out
        # Missing, in a directory it cannot write: cannot be made.
        nested = os.path.join(store, "a", "b")
        with open(path) as f:
            text = f.read()
        with open(path, "w") as f:
            f.write(text.replace('"%s"' % store, '"%s"' % nested))
        r = run()
        out = r.stdout + r.stderr
        assert r.returncode == 1, out
        assert ("%s:3: store_dir: %s: missing, and cannot be made in %s: "
                "Permission denied" % (path, nested, store)) in out, out
        os.chmod(store, 0o777)
        r = run()
        assert r.returncode == 0, r.stdout + r.stderr
    finally:
        shutil.rmtree(d, ignore_errors=True)


# ---------------------------------------------------------------- @include

def write(path, text):
    with open(str(path), "w") as f:
        f.write(text)
    return str(path)


INCLUDE_CASES = (
    # (files written in order, the last included from the main file,
    #  the file and line the error names, the error's text)
    ((("windows.conf", "# windows\nconn_window = 5000000000;\n"),),
     "windows.conf", 2, "integer 5000000000 does not fit in 32 bits"),
    ((("inner.conf", "max_payload = 10000000000;\n"),
      ("outer.conf", '@include "inner.conf"\n')),
     "inner.conf", 1, "integer 10000000000 does not fit"),
)


@pytest.mark.parametrize("files,where,line,text", INCLUDE_CASES,
                         ids=["included", "nested"])
def test_include_integer_over_32_bits(tmp_path, files, where, line, text):
    """The 32-bit guard of the main file holds in included files too, at
    any depth (libconfig would run conn_window = 5000000000 as 705032704)."""
    for name, body in files:
        write(tmp_path / name, body)
    path = write(tmp_path / "main.conf",
                 GOOD_HEAD + '@include "%s"\n' % files[-1][0])
    r = check(path)
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert "%s:%d: %s" % (tmp_path / where, line, text) in out, out


def test_include_absolute_path(tmp_path):
    """An absolute @include path works (libconfig 1.5 alone prefixes the
    include directory to it and cannot open it), and an error in that
    file is reported under the path as written."""
    os.makedirs(str(tmp_path / "abs"))
    inc = write(tmp_path / "abs" / "limits.conf", "max_payload = 1048576;\n")
    path = write(tmp_path / "main.conf", GOOD_HEAD.replace(
        "/tmp/relayd-check-never-store", str(tmp_path / "store")).replace(
        "127.0.0.1:7400", "%s:%d" % (HOST, free_port())) +
        '@include "%s"\n' % inc)
    r = check(path)
    assert r.returncode == 0, r.stdout + r.stderr
    write(inc, "\nmax_payload = \"big\";\n")
    r = check(path)
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert "%s:2: max_payload: expected an integer" % inc in out, out


def test_check_while_this_config_runs(make_relay):
    """Checked by hand while a relayd runs it, a config's own ports are
    taken by that relayd: -n says so and does not count them as errors."""
    a = make_relay("running", store=True).start()
    r = check(a.conf_path)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "another relayd answers on %s" % a.socket in out and \
        "listen and metrics are in use by it, not checked" in out, out


def test_include_tls_errors_name_the_included_file(tmp_path):
    """A certificate problem found after parsing (an expired one) is told
    at the included file and line where its tls group is."""
    tls = dated(tmp_path, "relay1", -30, -1)
    inc = write(tmp_path / "tls.conf", "# tls\n\ntls = %s;\n" % conf_tls(tls))
    path, _ = host_config(str(tmp_path), "false")
    with open(path) as f:
        text = f.read().replace("tls = false;\n", '@include "tls.conf"\n')
    write(path, text)
    r = check(path)
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert "%s:3: tls: certificate %s has expired" % (inc, tls["cert"]) \
        in out, out
