"""relayd under systemd: sd_notify, socket activation, make install.

No systemd runs here, so each piece is checked the way systemd would see it:
- the sd_notify sequence: relayd -d started with NOTIFY_SOCKET pointing at
  a Unix datagram socket the test binds sends READY=1 after start-up, a
  readable STATUS= line, WATCHDOG=1 every WATCHDOG_USEC/2 when
  WATCHDOG_USEC and WATCHDOG_PID (its own pid) are set, RELOADING=1 with
  MONOTONIC_USEC (CLOCK_MONOTONIC in us) and then READY=1 on SIGHUP, for a
  good and a refused reload, and STOPPING=1 then exit 0 on SIGTERM;
- socket activation: under `systemd-socket-activate -l 127.0.0.1:PORT`
  relayd accepts a peer on PORT (and not on its `listen` port, or with no
  `listen` at all), a PUT through that peer is stored, and the log says it
  uses the inherited socket;
- make install DESTDIR=... PREFIX=/usr puts exactly the expected files in
  place (units naming the installed binaries), the installed sysusers.d
  and tmpfiles.d files give /etc/relayd and its TLS key the right owner
  and modes in a scratch root, the installed relayd -n accepts the
  example config once its TLS paths name certificates from the installed
  gen-certs, and make uninstall leaves no file behind.
`systemd-analyze verify` and `systemd-analyze security` run in `make lint`.
"""

import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time

import pytest

import conftest
from conftest import (BUILD, HOST, RELAYD, START_TIMEOUT, assert_stored,
                      free_port, register, require_binaries, sha256_file,
                      wait_for)
import relaywire as W

REPO = conftest.REPO
DEADLINE = 10.0
WATCHDOG_USEC = 500000


# ------------------------------------------------------------------ helpers

class NotifySocket:
    """The NOTIFY_SOCKET end systemd would hold: every datagram relayd
    sends is kept in .seen as (monotonic time, {key: value}, raw text)."""

    def __init__(self, directory):
        self.path = os.path.join(directory, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.seen = []
        self.read = 0           # messages in .seen that expect() consumed

    def close(self):
        self.sock.close()

    def _recv(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(4096)
        except socket.timeout:
            return False
        text = data.decode("utf-8", "replace")
        fields = {}
        for line in text.split("\n"):
            if "=" in line:
                k, v = line.split("=", 1)
                fields[k] = v
        self.seen.append((time.monotonic(), fields, text))
        return True

    def expect(self, pred, what, timeout=DEADLINE):
        """The first message after the last one expect() returned for
        which pred(fields) is true; fails the test at the deadline."""
        deadline = time.monotonic() + timeout
        while True:
            while self.read < len(self.seen):
                t, fields, text = self.seen[self.read]
                self.read += 1
                if pred(fields):
                    return fields
            if not self._recv(deadline):
                pytest.fail("no %s within %.0fs; relayd sent: %r" % (
                    what, timeout, [m[2] for m in self.seen]))

    def times(self, key, value):
        return [t for t, f, _ in self.seen if f.get(key) == value]


def start_relayd(relay, argv, env_extra, config_text=None):
    """Start relayd as argv (ending in relayd -d -f CONF) with env_extra
    added to the environment; the relay's log, teardown and failure
    report work as for Relay.start()."""
    require_binaries()
    if config_text is None:
        relay.write_config()
    else:
        with open(relay.conf_path, "w") as f:
            f.write(config_text)
    env = dict(os.environ)
    for k in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID",
              "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES",
              "JOURNAL_STREAM"):
        env.pop(k, None)
    env.update(env_extra)
    relay._log = open(relay.log_path, "ab")
    relay.proc = register(subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=relay._log,
        stderr=relay._log, cwd=relay.dir, env=env, start_new_session=True))
    conftest._RELAYS.append(relay)
    return relay


def config_without_listen(relay):
    text = relay.config_text()
    out = [ln for ln in text.splitlines() if not ln.startswith("listen =")]
    assert len(out) == len(text.splitlines()) - 1
    return "\n".join(out) + "\n"


def refused(port):
    """True if nothing accepts TCP connections on 127.0.0.1:port."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(DEADLINE)
    try:
        s.connect((HOST, port))
    except ConnectionRefusedError:
        return True
    finally:
        s.close()
    return False


def now_mono_us():
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


# ------------------------------------------------------------ (1) sd_notify

def test_notify_sequence(make_relay, relay_root):
    relay = make_relay("nfy", store=True)
    ns = NotifySocket(relay_root)
    try:
        # WATCHDOG_PID must be relayd's own pid: the shell's, kept by exec.
        start_relayd(relay, ["sh", "-c", 'WATCHDOG_PID=$$ exec "$0" "$@"',
                             RELAYD, "-d", "-f", relay.conf_path],
                     {"NOTIFY_SOCKET": ns.path,
                      "WATCHDOG_USEC": str(WATCHDOG_USEC)})
        pid = relay.proc.pid

        ns.expect(lambda f: f.get("READY") == "1", "READY=1",
                  timeout=START_TIMEOUT)
        # READY=1 means start-up is done: the control socket answers.
        relay.status()
        st = ns.expect(lambda f: "STATUS" in f, "STATUS=")["STATUS"]
        assert re.fullmatch(r"[ -~]{10,200}", st), st
        assert re.search(r"\bserving\b", st) and "generation 1" in st, st

        # The watchdog is fed every WATCHDOG_USEC / 2 from the loop.
        wait_for(lambda: ns._recv(time.monotonic() + 1.0) and
                 len(ns.times("WATCHDOG", "1")) >= 8, DEADLINE,
                 "8 WATCHDOG=1 messages", interval=0)
        wd = ns.times("WATCHDOG", "1")
        gaps = sorted(b - a for a, b in zip(wd, wd[1:]))
        median = gaps[len(gaps) // 2]
        assert 0.15 <= median <= 0.40, "WATCHDOG=1 gaps %r" % gaps

        # A good reload: RELOADING=1 stamped with CLOCK_MONOTONIC, READY=1,
        # and the new generation in STATUS.
        before = now_mono_us()
        os.kill(pid, signal.SIGHUP)
        f = ns.expect(lambda f: f.get("RELOADING") == "1", "RELOADING=1")
        after = now_mono_us()
        assert re.fullmatch(r"[0-9]+", f.get("MONOTONIC_USEC", "")), f
        assert before <= int(f["MONOTONIC_USEC"]) <= after, (before, f, after)
        ns.expect(lambda f: f.get("READY") == "1", "READY=1 after reload")
        ns.expect(lambda f: "generation 2" in f.get("STATUS", ""),
                  "STATUS= with generation 2")

        # A refused reload ends in READY=1 too, and says so.
        with open(relay.conf_path, "w") as cf:
            cf.write("node_id = ;\n")
        before = now_mono_us()
        os.kill(pid, signal.SIGHUP)
        f = ns.expect(lambda f: f.get("RELOADING") == "1",
                      "RELOADING=1 (bad config)")
        assert before <= int(f["MONOTONIC_USEC"]) <= now_mono_us(), f
        f = ns.expect(lambda f: f.get("READY") == "1",
                      "READY=1 after a refused reload")
        assert "refused" in f.get("STATUS", ""), f
        assert relay.alive()

        # SIGTERM: STOPPING=1, a drain, exit 0.
        os.kill(pid, signal.SIGTERM)
        ns.expect(lambda f: f.get("STOPPING") == "1", "STOPPING=1")
        assert relay.proc.wait(DEADLINE) == 0, relay.log_tail()
        relay.stop_rc = 0
        assert not ns.times("READY", "0")
    finally:
        ns.close()


def test_no_watchdog_for_another_pid(make_relay, relay_root):
    """WATCHDOG_USEC meant for another process (WATCHDOG_PID not relayd's)
    gets no WATCHDOG=1: sd_watchdog_enabled() is really consulted."""
    relay = make_relay("nwd", store=True)
    ns = NotifySocket(relay_root)
    try:
        start_relayd(relay, [RELAYD, "-d", "-f", relay.conf_path],
                     {"NOTIFY_SOCKET": ns.path,
                      "WATCHDOG_USEC": str(WATCHDOG_USEC),
                      "WATCHDOG_PID": str(os.getpid())})
        ns.expect(lambda f: f.get("READY") == "1", "READY=1",
                  timeout=START_TIMEOUT)
        # Four watchdog periods: a fed watchdog would have said so 8 times.
        end = time.monotonic() + 4 * WATCHDOG_USEC / 1e6
        while ns._recv(end):
            pass
        assert not ns.times("WATCHDOG", "1"), [m[2] for m in ns.seen]
    finally:
        ns.close()


# ---------------------------------------------------- (2) socket activation

def socket_activate(relay, port, config_text=None):
    if shutil.which("systemd-socket-activate") is None:
        pytest.fail("systemd-socket-activate is missing (package systemd; "
                    "make deps)")
    start_relayd(relay, ["systemd-socket-activate", "-l",
                         "%s:%d" % (HOST, port), RELAYD, "-d", "-f",
                         relay.conf_path], {}, config_text)
    wait_for(lambda: "Listening on" in relay.log_text() or
             not relay.alive(), DEADLINE, "systemd-socket-activate to listen")
    assert relay.alive(), relay.log_tail()
    return relay


@pytest.mark.parametrize("listen", ["other-port", "absent"])
def test_socket_activation(make_relay, listen):
    relay = make_relay("act", store=True)
    port = free_port()
    socket_activate(relay, port, None if listen == "other-port" else
                    config_without_listen(relay))
    data = os.urandom(300 * 1024)
    key = "sa/%s" % listen
    # systemd-socket-activate starts relayd on the first connection, as
    # systemd does: this peer's HELLO is answered once relayd is up.
    with W.PeerConn(HOST, port, node="upstream",
                    timeout=START_TIMEOUT) as peer:
        peer.connect()
        assert peer.peer_hello.node == b"act"
        relay.wait_ready()
        assert "listening on inherited socket" in relay.log_text(), \
            relay.log_tail()
        # relayd did not bind its own `listen` as well.
        assert refused(relay.port)
        sid = peer.put(key, data)
        peer.send_data(sid, data)
        peer.send_end(sid)
        f = peer.expect_stream_end(sid,
                                   deadline=time.monotonic() + DEADLINE)
    assert f.type == W.RESULT, f
    assert [(e.node, e.status) for e in f.entries] == \
        [(b"act", W.RES_STORED)], f.entries
    assert_stored(relay, key, data)


def test_socket_activation_tls_survives_reload(make_relay):
    """A socket-activated relay with TLS and no `listen` still refuses
    plaintext peers after a reload (the reload once rebuilt the server
    TLS context only when `listen` was set)."""
    relay = make_relay("atl", store=True)
    tls = os.path.join(relay.dir, "tls")
    r = subprocess.run(["sh", os.path.join(REPO, "scripts", "gen-certs"),
                        tls, "atl"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    relay.tls = {"ca": os.path.join(tls, "ca.pem"),
                 "cert": os.path.join(tls, "atl.pem"),
                 "key": os.path.join(tls, "atl.key")}
    port = free_port()
    socket_activate(relay, port, config_without_listen(relay))

    def plaintext_refused():
        try:
            with W.PeerConn(HOST, port, timeout=START_TIMEOUT) as peer:
                peer.connect()
        except (W.PeerClosed, W.PeerTimeout, W.WireError, OSError):
            return True
        return False

    # The first connection starts relayd (see test_socket_activation).
    assert plaintext_refused()
    relay.wait_ready()
    off = relay.log_size()
    os.kill(relay.proc.pid, signal.SIGHUP)
    wait_for(lambda: "reload by SIGHUP" in relay.log_since(off), DEADLINE,
             "the reload")
    assert plaintext_refused(), \
        "a plaintext peer got through after the reload"



# ------------------------------------------------- (4) install / uninstall

def make(*args):
    """make in the repository with this test's build directory; the
    binaries are never rebuilt here (-o), they are what the suite tests."""
    cmd = ["make", "-s", "-C", REPO, "BUILD=" + BUILD,
           "-o", os.path.join(BUILD, "relayd"),
           "-o", os.path.join(BUILD, "relayctl")] + list(args)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, "%s: %s%s" % (" ".join(cmd), r.stdout,
                                            r.stderr)
    return r


def tree(root):
    """{relative path: mode} of every non-directory under root."""
    out = {}
    for d, dirs, files in os.walk(root):
        for n in files:
            p = os.path.join(d, n)
            out[os.path.relpath(p, root)] = stat.S_IMODE(os.lstat(p).st_mode)
    return out


def expected_files(prefix):
    p = prefix.strip("/")
    want = {
        p + "/sbin/relayd": 0o755,
        p + "/bin/relayctl": 0o755,
        p + "/lib/systemd/system/relayd.service": 0o644,
        p + "/lib/systemd/system/relayd.socket": 0o644,
        p + "/lib/sysusers.d/relayd.conf": 0o644,
        p + "/lib/tmpfiles.d/relayd.conf": 0o644,
        p + "/share/doc/relayd/relayd.conf.example": 0o644,
        p + "/share/relayd/gen-certs": 0o755,
    }
    for n in os.listdir(os.path.join(REPO, "man")):
        m = re.fullmatch(r".*\.([1-9])", n)
        if m:
            want["%s/share/man/man%s/%s" % (p, m.group(1), n)] = 0o644
    for n in os.listdir(os.path.join(REPO, "conf", "examples")):
        want[p + "/share/doc/relayd/examples/" + n] = 0o644
    return want


def check_units(dest, prefix):
    unitdir = os.path.join(dest, prefix.strip("/"), "lib/systemd/system")
    with open(os.path.join(unitdir, "relayd.service")) as f:
        svc = f.read()
    assert not re.search(r"@[A-Z]+@", svc), "unsubstituted @...@"
    # No `relayd -n` before start: it would find the listen port held by
    # relayd.socket.  A reload goes through relayctl, which reports a
    # refused config and fails the reload.
    assert not re.search(r"(?m)^ExecStartPre=", svc), "ExecStartPre= is back"
    for line in ("ExecStart=%s/sbin/relayd -d -f /etc/relayd/relayd.conf"
                 % prefix,
                 "ExecReload=%s/bin/relayctl -s /run/relayd/relayd.sock "
                 "reload" % prefix,
                 "Type=notify", "User=_relayd", "RuntimeDirectory=relayd",
                 "StateDirectory=relayd", "WatchdogSec=30"):
        assert re.search(r"(?m)^%s$" % re.escape(line), svc), line
    with open(os.path.join(unitdir, "relayd.socket")) as f:
        sock = f.read()
    # Loopback only by default, as the shipped relayd.conf listens, with
    # a commented line for other addresses; exactly one socket.
    assert re.findall(r"(?m)^ListenStream=(.*)$", sock) == \
        ["127.0.0.1:7400"], sock
    assert re.search(r"(?m)^#ListenStream=\S+$", sock), sock
    with open(os.path.join(REPO, "conf", "relayd.conf")) as f:
        assert re.search(r'(?m)^listen = "127\.0\.0\.1:7400";', f.read())
    assert re.search(r"(?m)^Accept=no$", sock)


def check_example_config(dest, prefix, work):
    """The installed relayd -n accepts the installed example config once
    its TLS paths name certificates made by the installed gen-certs."""
    p = os.path.join(dest, prefix.strip("/"))
    relayd = os.path.join(p, "sbin", "relayd")
    with open(os.path.join(p, "share/doc/relayd/relayd.conf.example")) as f:
        example = f.read()
    assert '"/etc/relayd/tls/' in example
    conf = os.path.join(work, "relayd.conf")
    tlsdir = os.path.join(work, "tls")
    # The TLS files must really be read: a missing one is an error.
    with open(conf, "w") as f:
        f.write(conftest.host_local(example.replace(
            "/etc/relayd/tls/", tlsdir + "/"), work))
    r = subprocess.run([relayd, "-n", "-f", conf], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode != 0, "relayd -n accepted missing TLS files"
    r = subprocess.run([os.path.join(p, "share/relayd/gen-certs"), tlsdir,
                        "relay"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([relayd, "-n", "-f", conf], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "OK" in r.stderr, r.stderr


def check_sysusers_tmpfiles(dest, prefix, work):
    """sysusers.d and tmpfiles.d applied to a scratch root: user and group
    _relayd exist, /etc/relayd and /etc/relayd/tls are 0750 root:_relayd
    and no key is readable beyond the service user: a relay key made by
    root becomes 0600 _relayd:_relayd, the CA's key 0600 root:root."""
    root = os.path.join(work, "root")
    for sub in ("sysusers.d", "tmpfiles.d"):
        d = os.path.join(root, "usr/lib", sub)
        os.makedirs(d)
        shutil.copy(os.path.join(dest, prefix.strip("/"), "lib", sub,
                                 "relayd.conf"), d)
    os.makedirs(os.path.join(root, "etc/relayd/tls"))
    for name, mode in (("relay.key", 0o600), ("ca.key", 0o644),
                       ("other.key", 0o666), ("ca.pem", 0o644)):
        key = os.path.join(root, "etc/relayd/tls", name)
        with open(key, "w"):
            pass
        os.chmod(key, mode)
    os.chmod(os.path.join(root, "etc/relayd"), 0o755)
    for cmd in (["systemd-sysusers", "--root=" + root],
                ["systemd-tmpfiles", "--root=" + root, "--create",
                 "relayd.conf"]):
        if shutil.which(cmd[0]) is None:
            pytest.fail("%s is missing (package systemd; make deps)" % cmd[0])
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, "%s: %s" % (cmd, r.stderr)
    with open(os.path.join(root, "etc/passwd")) as f:
        users = {ln.split(":")[0]: ln.split(":") for ln in f}
    with open(os.path.join(root, "etc/group")) as f:
        groups = {ln.split(":")[0]: ln.split(":") for ln in f}
    assert "_relayd" in users and "_relayd" in groups
    gid = int(groups["_relayd"][2])
    uid = int(users["_relayd"][2])
    assert int(users["_relayd"][3]) == gid
    for path, mode, owner in (
            ("etc/relayd", 0o750, (0, gid)),
            ("etc/relayd/tls", 0o750, (0, gid)),
            ("etc/relayd/tls/relay.key", 0o600, (uid, gid)),
            ("etc/relayd/tls/other.key", 0o600, (uid, gid)),
            ("etc/relayd/tls/ca.key", 0o600, (0, 0))):
        st = os.stat(os.path.join(root, path))
        assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == \
            (mode, owner[0], owner[1]), path
    # No key material for the group or others, whoever owns it.
    tls = os.path.join(root, "etc/relayd/tls")
    for n in os.listdir(tls):
        if n.endswith(".key"):
            assert stat.S_IMODE(os.stat(os.path.join(tls, n)).st_mode) & \
                0o077 == 0, n


@pytest.mark.parametrize("prefix", ["/usr", None])
def test_install_uninstall(prefix):
    require_binaries()
    work = tempfile.mkdtemp(prefix="rlyinst", dir="/tmp")
    dest = os.path.join(work, "dest")
    args = ["DESTDIR=" + dest]
    if prefix is not None:
        args.append("PREFIX=" + prefix)
    else:
        prefix = "/usr/local"           # the Makefile's default
    try:
        make("install", *args)
        got = tree(dest)
        assert got == expected_files(prefix)
        p = prefix.strip("/") + "/"
        for rel, src in (("sbin/relayd", os.path.join(BUILD, "relayd")),
                         ("bin/relayctl", os.path.join(BUILD, "relayctl")),
                         ("share/relayd/gen-certs",
                          os.path.join(REPO, "scripts", "gen-certs"))):
            assert sha256_file(src) == \
                sha256_file(os.path.join(dest, p + rel)), rel
        check_units(dest, prefix)
        check_example_config(dest, prefix, work)
        check_sysusers_tmpfiles(dest, prefix, work)
        make("uninstall", *args)
        assert tree(dest) == {}
        for d in ("share/doc/relayd", "share/relayd"):
            assert not os.path.exists(os.path.join(dest, prefix.strip("/"),
                                                   d)), d
    finally:
        shutil.rmtree(work, ignore_errors=True)
