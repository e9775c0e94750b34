"""Fixtures for the relayd system tests: configs, relays, chains, PUTs.

Everything runs on 127.0.0.1.  Every process a test starts (relayd,
background relayctl) is registered and killed by PID at teardown, even when
the test fails; the logs of the relays of a failed test are printed.

Binaries come from $RELAYD_BUILD (absolute), default ../../build relative to
this directory.  $RELAYD_TEST_EXTRA_CONF, if set, is appended to every
generated config.

Generated configs say `tls = false;` (plaintext peer links) unless the
Relay is given tls={"ca":..., "cert":..., "key":..., "allow": [...]}, or
the extra text sets a top-level tls itself.
"""

import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.environ.get("RELAYD_BUILD") or os.path.normpath(
    os.path.join(HERE, "..", "..", "build"))
RELAYD = os.path.join(BUILD, "relayd")
RELAYCTL = os.path.join(BUILD, "relayctl")
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
HOST = "127.0.0.1"
EXTRA_CONF = os.environ.get("RELAYD_TEST_EXTRA_CONF", "")

# Timeouts a test relay uses unless the test says otherwise: short enough
# that nothing in the suite can wait for long, long enough for ASan builds.
TEST_DEFAULTS = {
    "handshake_timeout": 5.0,
    "connect_timeout": 2.0,
    "result_timeout": 30.0,
    "stream_inactivity_timeout": 10.0,
    "idle_timeout": 30.0,
    "drain_timeout": 2.0,
}
def sanitized(pid):
    """True if process pid runs with AddressSanitizer: its quarantine
    and shadow memory make RSS figures meaningless (LeakSanitizer at exit
    checks leaks instead)."""
    with open("/proc/%d/maps" % pid) as f:
        return "libasan" in f.read()


SANITIZER_RX = (r"AddressSanitizer|LeakSanitizer|ThreadSanitizer|"
                r"UndefinedBehaviorSanitizer|runtime error:")
# RELAYD_VALGRIND=1 runs every relayd under valgrind's memcheck; a relay
# with memory errors or leaks then fails its test when it is stopped.
VALGRIND = (["valgrind", "-q", "--leak-check=full",
             "--errors-for-leak-kinds=definite", "--error-exitcode=99"]
            if os.environ.get("RELAYD_VALGRIND") == "1" else [])
START_TIMEOUT = 60.0 if VALGRIND else 15.0
STOP_TIMEOUT = 30.0 if VALGRIND else 5.0

FLOAT_OPTS = ("stream_inactivity_timeout", "handshake_timeout",
              "result_timeout", "connect_timeout", "idle_timeout",
              "drain_timeout", "output_timeout")
INT_OPTS = ("max_payload", "conn_window", "stream_window",
            "max_streams_per_peer", "max_buffered", "max_fork_lag",
            "max_output_buffer", "store_max_bytes")

# Every process started by a test: killed by PID at teardown.
_PROCS = []
_RELAYS = []


# ------------------------------------------------------------------ helpers

def wait_for(cond, timeout, what, interval=0.02):
    """Poll cond() until it returns something truthy; return that value.
    Fails the test with `what` once timeout seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() >= deadline:
            pytest.fail("timed out after %.1fs waiting for %s" %
                        (timeout, what))
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))


_given_ports = set()


# Listening ports come from below the kernel's ephemeral range (32768 and
# up by default), so no outgoing connection's source port can take one
# between free_port() and the relay's bind; each pytest-xdist worker has
# its own slice, so parallel workers never hand out the same port.
PORT_BASE = 20000
PORT_SLICE = 1500
PORT_SLICES = 8


def _port_slice():
    w = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    try:
        k = int(w.lstrip("gw"))
    except ValueError:
        k = 0
    lo = PORT_BASE + (k % PORT_SLICES) * PORT_SLICE
    return lo, lo + PORT_SLICE


_next_port = [None]


def free_port():
    """A TCP port on 127.0.0.1 nothing listens on now, never handed out
    twice in one session, from this worker's slice of ports."""
    lo, hi = _port_slice()
    if _next_port[0] is None:
        _next_port[0] = lo + (os.getpid() % PORT_SLICE)
    for _ in range(PORT_SLICE):
        port = _next_port[0]
        _next_port[0] = lo + (port + 1 - lo) % (hi - lo)
        if port in _given_ports:
            continue
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind((HOST, port))
        except OSError:
            continue
        finally:
            s.close()
        _given_ports.add(port)
        return port
    raise RuntimeError("no free port in %d..%d" % (lo, hi - 1))


def store_key_filename(key):
    """src/store.h store_key_filename(): bytes in [A-Za-z0-9._-] are kept,
    every other byte (and a leading '.') becomes %XX, upper-case hex."""
    if isinstance(key, str):
        key = key.encode()
    out = []
    for i, c in enumerate(key):
        keep = (0x30 <= c <= 0x39 or 0x41 <= c <= 0x5a or
                0x61 <= c <= 0x7a or c in b"._-")
        if c == 0x2e and i == 0:
            keep = False
        out.append(chr(c) if keep else "%%%02X" % c)
    return "".join(out)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def conf_int(v):
    """A libconfig integer literal (1.5 wants an L suffix above 32 bits)."""
    v = int(v)
    return "%dL" % v if not -2 ** 31 <= v < 2 ** 31 else "%d" % v


def conf_str(s):
    """A libconfig string literal."""
    return '"%s"' % s.replace("\\", "\\\\").replace('"', '\\"')


def conf_tls(tls):
    """A libconfig tls value: False -> false, a dict -> the group."""
    if tls is False:
        return "false"
    parts = ["%s = %s;" % (k, conf_str(tls[k])) for k in ("ca", "cert", "key")
             if k in tls]
    if tls.get("allow") is not None:
        parts.append("allow = [ %s ];" %
                     ", ".join(conf_str(a) for a in tls["allow"]))
    unknown = set(tls) - {"ca", "cert", "key", "allow"}
    if unknown:
        raise ValueError("unknown tls keys %r" % sorted(unknown))
    return "{ %s }" % " ".join(parts)


_TOP_TLS_RX = re.compile(r"^\s*tls\s*[=:]", re.M)


def parse_json_output(text):
    """The JSON object relayctl -j printed: the whole output if it is one
    document, else the last line that is a JSON object with "ok" (earlier
    lines may be events)."""
    text = text.strip()
    try:
        v = json.loads(text)
        if isinstance(v, dict):
            return v
    except ValueError:
        pass
    last = None
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            v = json.loads(line)
        except ValueError:
            continue
        if isinstance(v, dict):
            if "ok" in v or "results" in v:
                last = v
            elif last is None:
                last = v
    return last


def register(proc):
    _PROCS.append(proc)
    return proc


def kill_proc(proc, term_timeout=STOP_TIMEOUT, term=True):
    """SIGTERM (unless term is False: already sent), then SIGKILL after
    term_timeout; by PID only."""
    if proc.poll() is not None:
        return proc.returncode
    try:
        if term:
            os.kill(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        return proc.wait(term_timeout)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.kill(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return proc.wait(10)


def require_binaries(*paths):
    for p in paths or (RELAYD, RELAYCTL):
        if not os.access(p, os.X_OK):
            pytest.fail("%s is missing or not executable (build it, or set "
                        "RELAYD_BUILD)" % p)


def relayctl(args, timeout=60, socket_path=None, stdin=None):
    """Run relayctl; returns CompletedProcess (text)."""
    cmd = [RELAYCTL]
    if socket_path:
        cmd += ["-s", socket_path]
    r = subprocess.run(cmd + list(args), capture_output=True, text=True,
                       timeout=timeout, stdin=stdin or subprocess.DEVNULL)
    return r


def ctl_json(relay, *args, rc=0, timeout=15):
    """relayctl -j ARGS on relay's control socket: asserts the exit code,
    returns the parsed JSON object."""
    r = relayctl(["-j"] + list(args), timeout=timeout,
                 socket_path=relay.socket)
    assert r.returncode == rc, "%s: relayctl -j %s: exit %d\n%s%s" % (
        relay.name, " ".join(args), r.returncode, r.stdout, r.stderr)
    v = json.loads(r.stdout)
    assert isinstance(v, dict), r.stdout
    return v


def nfds(pid):
    """Descriptors pid has open (/proc/PID/fd)."""
    return len(os.listdir("/proc/%d/fd" % pid))


def proc_value(pid, name, key):
    """The first number after key on its line of /proc/PID/NAME: say
    ("status", "VmRSS:") in KiB, ("io", "syscr:"), or ("limits", "Max
    open files") for the soft limit."""
    with open("/proc/%d/%s" % (pid, name)) as f:
        for ln in f:
            if ln.startswith(key):
                return int(ln[len(key):].split()[0])
    raise AssertionError("no %r in /proc/%d/%s" % (key, pid, name))


def rss(pid):
    """VmRSS of pid in bytes (/proc/PID/status)."""
    return proc_value(pid, "status", "VmRSS:") * 1024


def recv_all(sock):
    """Every byte sock receives until the peer closes (the socket's own
    timeout bounds each wait)."""
    out = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return out
        out += chunk


def bytes_in(relay, key):
    """Payload bytes relay's stream of key has received, or None when it
    has no such stream in flight."""
    s = relay.stream_for(key)
    return None if s is None else s.get("bytes_in")


# -------------------------------------------------------------------- relay

class Relay:
    """One relayd process with its own directory, port, store and control
    socket.

    peers:  [{"name":..., "address": "host:port", "rate_limit": N}, ...]
            (a Relay object may be given as "relay" instead of address;
            "tls": False or a dict as below gives the link its own tls;
            "identity": the certificate identity the peer must present)
    routes: [{"prefix":..., "hops": [names], "mode":..., "store": bool}]
            default: one route, prefix "", no hops, store=`store`.
    tls:    None: `tls = false;` (plaintext); or a dict {"ca": path,
            "cert": path, "key": path, "allow": [entries]} ("allow"
            optional) written as the top-level tls group
    opts:   any scalar option of config.h (max_payload, stream_window, ...)
    """

    def __init__(self, name, root, port=None, peers=(), routes=None,
                 store=False, extra="", tls=None, **opts):
        self.name = name
        self.dir = os.path.join(root, name)
        self.store_dir = os.path.join(self.dir, "store")
        self.socket = os.path.join(self.dir, "ctl.sock")
        self.conf_path = os.path.join(self.dir, "relayd.conf")
        self.log_path = os.path.join(self.dir, "relayd.log")
        self.port = port or free_port()
        self.peers = list(peers)
        self.routes = routes if routes is not None else [
            {"prefix": "", "hops": [], "store": store}]
        self.extra = extra
        self.tls = tls
        for k in opts:
            if k not in FLOAT_OPTS + INT_OPTS:
                raise ValueError("unknown relayd option %r" % k)
        self.opts = dict(TEST_DEFAULTS)
        self.opts.update(opts)
        self.proc = None
        self.killed = False             # kill9() by the test
        self.stop_rc = None
        self._termed = False
        self._log = None
        os.makedirs(self.store_dir, exist_ok=True)

    @property
    def address(self):
        return "%s:%d" % (HOST, self.port)

    def __repr__(self):
        return "Relay(%s %s)" % (self.name, self.address)

    # -- config

    def config_text(self):
        lines = [
            "# generated by tests/system/conftest.py",
            "node_id = %s;" % conf_str(self.name),
            "listen = %s;" % conf_str(self.address),
            "control_socket = %s;" % conf_str(self.socket),
            "store_dir = %s;" % conf_str(self.store_dir),
        ]
        if self.tls is not None:
            lines.append("tls = %s;" % conf_tls(self.tls))
        elif not (_TOP_TLS_RX.search(self.extra) or
                  _TOP_TLS_RX.search(EXTRA_CONF)):
            lines.append("tls = false;")
        for k in INT_OPTS:
            if k in self.opts:
                lines.append("%s = %s;" % (k, conf_int(self.opts[k])))
        for k in FLOAT_OPTS:
            if k in self.opts:
                lines.append("%s = %.6f;" % (k, float(self.opts[k])))
        lines.append("peers = (")
        for i, p in enumerate(self.peers):
            addr = p.get("address") or p["relay"].address
            sep = "," if i + 1 < len(self.peers) else ""
            ptls = ""
            if p.get("tls") is not None:
                ptls = " tls = %s;" % conf_tls(p["tls"])
            if p.get("identity") is not None:
                ptls += " identity = %s;" % conf_str(p["identity"])
            lines.append("  { name = %s; address = %s; rate_limit = %s;%s }%s"
                         % (conf_str(p["name"]), conf_str(addr),
                            conf_int(p.get("rate_limit", 0)), ptls, sep))
        lines.append(");")
        lines.append("routes = (")
        for i, r in enumerate(self.routes):
            hops = ", ".join(conf_str(h) for h in r.get("hops", []))
            sep = "," if i + 1 < len(self.routes) else ""
            lines.append("  { prefix = %s; hops = [ %s ]; mode = %s; "
                         "store = %s; }%s"
                         % (conf_str(r.get("prefix", "")), hops,
                            conf_str(r.get("mode", "fanout")),
                            "true" if r.get("store") else "false", sep))
        lines.append(");")
        if self.extra:
            lines.append(self.extra)
        if EXTRA_CONF:
            lines.append(EXTRA_CONF)
        return "\n".join(lines) + "\n"

    def write_config(self):
        with open(self.conf_path, "w") as f:
            f.write(self.config_text())
        return self.conf_path

    # -- process

    def start(self, wait=True, preexec_fn=None):
        """preexec_fn runs in the child before relayd (e.g. to lower
        its descriptor limit as systemd's default would)."""
        require_binaries()
        self.write_config()
        self._log = open(self.log_path, "ab")
        self.proc = register(subprocess.Popen(
            VALGRIND + [RELAYD, "-d", "-f", self.conf_path],
            stdin=subprocess.DEVNULL,
            stdout=self._log, stderr=self._log, cwd=self.dir,
            start_new_session=True, preexec_fn=preexec_fn))
        _RELAYS.append(self)
        if wait:
            self.wait_ready()
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def _answers(self):
        if not self.alive():
            pytest.fail("%s exited with %s during start-up; log:\n%s" % (
                self.name, self.proc.returncode, self.log_tail()))
        r = relayctl(["-j", "status"], timeout=10, socket_path=self.socket)
        return r.returncode == 0

    def wait_ready(self, timeout=START_TIMEOUT):
        wait_for(self._answers, timeout,
                 "%s to answer relayctl status" % self.name, interval=0.05)

    def terminate(self):
        """Send SIGTERM (once) without waiting: stop() waits."""
        if self.alive() and not self._termed:
            self._termed = True
            os.kill(self.proc.pid, signal.SIGTERM)

    def stop(self):
        """SIGTERM, SIGKILL after STOP_TIMEOUT; returns the exit status
        (negative: the signal that ended it)."""
        if self.proc is not None and self.stop_rc is None:
            self.stop_rc = kill_proc(self.proc, term=not self._termed)
        if self._log:
            self._log.close()
            self._log = None
        return self.stop_rc

    def kill9(self):
        self.killed = True
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def shutdown_problems(self):
        """What went wrong when this relay stopped: it had to be
        SIGKILLed after SIGTERM, or a sanitizer reported an error."""
        out = []
        if self.proc is None or self.killed:
            return out
        if self.stop_rc == -signal.SIGKILL:
            out.append("%s did not exit within %.0fs of SIGTERM" %
                       (self.name, STOP_TIMEOUT))
        san = lines_matching(self.log_text(), SANITIZER_RX)
        if san:
            out.append("%s: sanitizer report: %s" % (self.name, san[0]))
        if VALGRIND and self.stop_rc not in (0, None):
            out.append("%s: exit %s under valgrind (errors or leaks): %s"
                       % (self.name, self.stop_rc, self.log_tail(20)))
        return out

    # -- observation

    def status(self, timeout=10):
        r = relayctl(["-j", "status"], timeout=timeout,
                     socket_path=self.socket)
        assert r.returncode == 0, "%s: relayctl status exit %d: %s%s" % (
            self.name, r.returncode, r.stdout, r.stderr)
        v = parse_json_output(r.stdout)
        assert v is not None, "%s: status is not JSON: %r" % (self.name,
                                                               r.stdout)
        return v

    def stats(self):
        """The "stats" object of `relayctl -j show stats`."""
        return ctl_json(self, "show", "stats")["stats"]

    def streams(self):
        return self.status().get("streams") or []

    def stream_for(self, key):
        """This relay's status entry for the stream of key, or None."""
        for s in self.streams():
            if s.get("key") == key:
                return s
        return None

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_size(self):
        try:
            return os.path.getsize(self.log_path)
        except FileNotFoundError:
            return 0

    def log_since(self, offset):
        with open(self.log_path, "rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", "replace")

    def log_tail(self, n=60):
        return "\n".join(self.log_text().splitlines()[-n:])

    def stored_path(self, key):
        return os.path.join(self.store_dir, store_key_filename(key))

    def store_files(self):
        """Every name in the store directory (final and temp files)."""
        try:
            return sorted(os.listdir(self.store_dir))
        except FileNotFoundError:
            return []

    def temp_files(self):
        return [n for n in self.store_files() if n.startswith(".tmp-")]


# ------------------------------------------------------------------ fixtures

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def _failed(node):
    for when in ("setup", "call"):
        rep = getattr(node, "rep_" + when, None)
        if rep is not None and rep.failed:
            return True
    return False


@pytest.fixture
def relay_root(request):
    """A short directory for relays (Unix socket paths must be short).
    At teardown its relays are stopped and, if the test failed, their log
    tails are printed and the directory is kept for inspection."""
    d = tempfile.mkdtemp(prefix="rly", dir="/tmp")
    yield d
    mine = [r for r in _RELAYS if r.dir.startswith(d + os.sep)]
    problems = []
    for r in mine:                      # all drain at once
        r.terminate()
    for r in mine:
        try:
            r.stop()
        except Exception as e:          # keep stopping the others
            problems.append("%s: stop failed: %s" % (r.name, e))
        problems += r.shutdown_problems()
    failed = _failed(request.node)
    if failed or problems:
        for r in mine:
            print("==== %s (%s) log tail ====\n%s" % (r.name, r.address,
                                                      r.log_tail(80)))
        print("relay directories kept in %s" % d)
    else:
        shutil.rmtree(d, ignore_errors=True)
    if problems and not failed:
        pytest.fail("; ".join(problems))


@pytest.fixture(autouse=True)
def _reap_processes():
    """Kill every process the test started, by PID (SIGTERM, then SIGKILL
    after a deadline), whatever the outcome of the test."""
    nprocs, nrelays = len(_PROCS), len(_RELAYS)
    yield
    for p in reversed(_PROCS[nprocs:]):
        try:
            kill_proc(p)
        except Exception:               # keep killing the others
            pass
    for r in _RELAYS[nrelays:]:
        r.stop()
    del _PROCS[nprocs:]
    del _RELAYS[nrelays:]


def pytest_sessionfinish(session, exitstatus):
    for p in _PROCS:
        try:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGKILL)
                p.wait(5)
        except Exception:
            pass


@pytest.fixture
def make_relay(relay_root):
    """make_relay(name, **Relay kwargs) -> Relay (not started)."""
    def make(name, **kw):
        return Relay(name, relay_root, **kw)
    return make


@pytest.fixture
def chain(relay_root):
    """chain(n, store=(n,), first=0, opts={}, hop_opts={i: {...}},
    rate_limit={i: bytes_per_s}, start=True, tls=None) -> list of Relay.

    Makes hop<first>..hop<n>; hop i routes prefix "" to hop i+1 (fanout)
    and stores if i is in store.  rate_limit[i] limits hop i's link to
    hop i+1.  tls is Relay's tls for every hop (None: plaintext);
    hop_opts[i]["tls"] overrides it for hop i.  Relays are started from the
    last hop backwards, so every downstream listener exists before its
    upstream starts.
    """
    def make(n, store=None, first=0, opts=None, hop_opts=None,
             rate_limit=None, start=True, tls=None):
        store = (n,) if store is None else tuple(store)
        opts = opts or {}
        hop_opts = hop_opts or {}
        rate_limit = rate_limit or {}
        names = ["hop%d" % i for i in range(first, n + 1)]
        ports = {nm: free_port() for nm in names}
        relays = []
        for i in range(first, n + 1):
            nm = "hop%d" % i
            kw = dict(opts)
            kw["tls"] = tls
            kw.update(hop_opts.get(i, {}))
            peers, hops = [], []
            if i < n:
                nxt = "hop%d" % (i + 1)
                peers.append({"name": nxt,
                              "address": "%s:%d" % (HOST, ports[nxt]),
                              "rate_limit": rate_limit.get(i, 0)})
                hops.append(nxt)
            routes = [{"prefix": "", "hops": hops, "mode": "fanout",
                       "store": i in store}]
            relays.append(Relay(nm, relay_root, port=ports[nm],
                                peers=peers, routes=routes, **kw))
        if start:
            for r in reversed(relays):
                r.start(wait=False)
            for r in reversed(relays):
                r.wait_ready()
        return relays
    return make


class BackgroundPut:
    """relayctl put running in the background (subprocess.Popen)."""

    def __init__(self, proc, json_mode):
        self.proc = proc
        self.json_mode = json_mode
        self.out = None
        self.err = None
        self.started = time.monotonic()

    def finish(self, timeout):
        """(exit code, parsed JSON or text) once relayctl ends; fails the
        test if it does not end within timeout seconds."""
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_proc(self.proc, 1)
            pytest.fail("relayctl put did not end within %.1fs (a hang)"
                        % timeout)
        self.out, self.err = out, err
        if self.json_mode:
            return self.proc.returncode, parse_json_output(out)
        return self.proc.returncode, out + err

    @property
    def elapsed(self):
        return time.monotonic() - self.started


def _put_cmd(relay, key, path, hops, json_mode, put_id):
    cmd = [RELAYCTL]
    if json_mode:
        cmd.append("-j")
    cmd += ["-s", relay.socket, "put", "-b", str(hops)]
    if put_id:
        cmd += ["-i", put_id]
    cmd += [key, path]
    return cmd


def _payload_file(relay, key, data):
    d = os.path.join(relay.dir, "payloads")
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, store_key_filename(key) + ".%d" % time.monotonic_ns())
    with open(path, "wb") as f:
        f.write(data)
    return path


def put(relay, key, data, hops=16, json=True, put_id=None, timeout=90):
    """Run relayctl put into relay; returns (exit code, parsed JSON) or,
    with json=False, (exit code, stdout+stderr text)."""
    return put_bg(relay, key, data, hops, json, put_id).finish(timeout)


def put_bg(relay, key, data, hops=16, json=True, put_id=None):
    """Start relayctl put in the background; .finish(timeout) collects."""
    require_binaries(RELAYCTL)
    path = _payload_file(relay, key, data)
    proc = register(subprocess.Popen(
        _put_cmd(relay, key, path, hops, json, put_id),
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True))
    return BackgroundPut(proc, json)


def results_by_node(js):
    """{node: entry} from a relayctl -j put answer."""
    return {e["node"]: e for e in (js or {}).get("results") or []}


def first_difference(path, data):
    """None if the file at path holds exactly data's bytes, else a text
    naming the size mismatch or the first offset where they differ."""
    size = os.path.getsize(path)
    if size != len(data):
        return "size %d, source has %d bytes" % (size, len(data))
    view = memoryview(data)
    off = 0
    with open(path, "rb") as f:
        while True:
            block = f.read(1 << 20)
            if not block:
                return None
            if block != view[off:off + len(block)]:
                for i, b in enumerate(block):
                    if b != view[off + i]:
                        return "first difference at byte %d" % (off + i)
            off += len(block)


def assert_stored(relay, key, data):
    """The file for key on relay holds exactly data's bytes."""
    path = relay.stored_path(key)
    assert os.path.exists(path), "%s has no file %s (store: %r)" % (
        relay.name, path, relay.store_files())
    diff = first_difference(path, data)
    assert diff is None, "%s: %s differs from the source: %s" % (
        relay.name, path, diff)


def wait_stored(relay, key, data, timeout, interval=0.05):
    """Wait (bounded) until relay stores key, then compare the file with
    the source bytes: every test that waits for a store checks integrity
    too, not only presence."""
    wait_for(lambda: os.path.exists(relay.stored_path(key)), timeout,
             "%s to store %r" % (relay.name, key), interval=interval)
    assert_stored(relay, key, data)


def lines_matching(text, pattern):
    rx = re.compile(pattern, re.I)
    return [ln for ln in text.splitlines() if rx.search(ln)]


_HOST_LISTEN_RX = re.compile(r'(?m)^(\s*(?:listen|metrics)\s*=\s*")'
                             r'(\[[^\]"]*\]|[^":\[]*):\d+(";)')
_HOST_STORE_RX = re.compile(r'(?m)^(\s*store_dir\s*=\s*)"[^"]*";')


def host_local(text, directory):
    """A shipped config's host-specific settings made to fit this machine
    (store_dir under directory, free ports for listen and metrics), so
    that `relayd -n`, which tries them, judges the rest of the file."""
    text = _HOST_LISTEN_RX.sub(lambda m: "%s%s:%d%s" % (
        m.group(1), m.group(2), free_port(), m.group(3)), text)
    return _HOST_STORE_RX.sub(lambda m: "%s%s;" % (
        m.group(1), conf_str(os.path.join(directory, "store"))), text)
