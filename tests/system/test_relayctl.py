"""relayctl: every command against real relayd processes, in human and
JSON form, and the client-side parser (prefixes, usage errors, help, exit
codes) against a small fake control socket.

Exit codes (relayctl(8)): 0 ok, 1 the daemon said "ok": false, 2 usage
error, 3 relayd unreachable or the connection lost before the answer.
"""

import json
import os
import queue
import re
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import (RELAYCTL, assert_stored, ctl_json,
                      put, put_bg, register, relayctl,
                      require_binaries, results_by_node, wait_for)
from tlsutil import certs_fixture  # noqa: F401 (the `certs` fixture)

PUT_ID = "0123456789abcdef0123456789abcdef"
OTHER_ID = "fedcba9876543210fedcba9876543210"


# ------------------------------------------------------------------ helpers

def ctl(relay, *args, timeout=10):
    return relayctl(list(args), timeout=timeout, socket_path=relay.socket)


def ctl_human(relay, *args, rc=0):
    r = ctl(relay, *args)
    assert r.returncode == rc, "relayctl %s: exit %d\n%s%s" % (
        " ".join(args), r.returncode, r.stdout, r.stderr)
    return r.stdout


class Lines:
    """The stdout lines of a running process, read by a thread so that a
    test can wait for one with a deadline."""

    def __init__(self, proc):
        self.proc = proc
        self.lines = []
        self._q = queue.Queue()
        self._eof = False
        t = threading.Thread(target=self._read, daemon=True)
        t.start()

    def _read(self):
        for line in self.proc.stdout:
            self._q.put(line.rstrip("\n"))
        self._q.put(None)

    def wait_for(self, pred, timeout, what):
        """The first line (from now on) for which pred(line) is true."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or self._eof:
                pytest.fail("%s: no line with %s within %.1fs; lines: %r"
                            % ("EOF" if self._eof else "timeout", what,
                               timeout, self.lines[-20:]))
            try:
                line = self._q.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                self._eof = True
                continue
            self.lines.append(line)
            if pred(line):
                return line

    def rest(self, timeout):
        """Every line until EOF (the process must end within timeout)."""
        deadline = time.monotonic() + timeout
        out = []
        while not self._eof:
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail("no EOF within %.1fs; lines: %r" %
                            (timeout, self.lines[-20:]))
            try:
                line = self._q.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                self._eof = True
            else:
                self.lines.append(line)
                out.append(line)
        return out


def start_monitor(relay, json_mode=True):
    require_binaries(RELAYCTL)
    cmd = [RELAYCTL, "-s", relay.socket] + (["-j"] if json_mode else []) + \
        ["monitor"]
    proc = register(subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True))
    lines = Lines(proc)
    return proc, lines


def json_event(name, **match):
    """A predicate: a JSON line of event `name` with these field values."""
    def pred(line):
        try:
            v = json.loads(line)
        except ValueError:
            return False
        return v.get("event") == name and all(
            v.get(k) == want for k, want in match.items())
    return pred


def end_proc(proc, sig=signal.SIGTERM, timeout=5):
    """Signal proc by PID; its exit status (fails the test on a hang)."""
    os.kill(proc.pid, sig)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
        pytest.fail("pid %d did not exit within %.0fs of signal %d"
                    % (proc.pid, timeout, sig))


def two_hops(chain, **kw):
    """hop0 (no store) -> hop1 (stores everything)."""
    return chain(1, store=(1,), **kw)


# ------------------------------------------------ a fake control socket

class FakeRelayd:
    """A Unix control socket that records each request line and answers
    it with canned lines; answer None closes without a word."""

    def __init__(self, path, answer):
        self.path = path
        self.answer = answer
        self.requests = []
        self.connections = 0
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self._stop = False
        self._t = threading.Thread(target=self._serve, daemon=True)
        self._t.start()

    def _serve(self):
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.connections += 1
            with conn:
                conn.settimeout(5)
                buf = b""
                try:
                    while b"\n" not in buf:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        buf += chunk
                except OSError:
                    continue
                if b"\n" in buf:
                    self.requests.append(json.loads(buf.split(b"\n")[0]))
                if self.answer is not None:
                    conn.sendall(b"".join(json.dumps(a).encode() + b"\n"
                                          for a in self.answer))

    def close(self):
        self._stop = True
        self._t.join(2)
        self.sock.close()


@pytest.fixture
def fake(tmp_path_factory):
    """fake(answer) -> FakeRelayd on a fresh short socket path."""
    made = []
    d = tmp_path_factory.mktemp("ctl")

    def make(answer=({"ok": True},)):
        f = FakeRelayd(str(d / ("f%d.sock" % len(made))),
                       None if answer is None else list(answer))
        made.append(f)
        return f
    yield make
    for f in made:
        f.close()


def run(sock, *args):
    require_binaries(RELAYCTL)
    return relayctl(list(args), timeout=10, socket_path=sock)


# ------------------------------------------------------- client side only

def test_help_is_printed_from_the_command_and_word_tables(fake):
    """`relayctl help` lists every command with its words; `help
    COMMAND` (any unique prefix) shows one command's usage and words;
    nothing is sent to relayd."""
    f = fake()
    r = run(f.path, "help")
    assert r.returncode == 0, r.stderr
    for c in ("status",
              "show peers|streams|routes|config|stats|puts|store [prefix]",
              "monitor",
              "put [-b hops] [-i putid] key file", "outcome putid",
              "reload", "drain", "log level warn|info|debug", "help"):
        assert re.search(r"^  %s\s" % re.escape(c), r.stdout, re.M), \
            (c, r.stdout)
    r = run(f.path, "help", "sh")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("usage: relayctl [-jv] [-s socket] show "
                               "peers|streams|routes|config|stats|puts|store "
                               "[prefix]\n")
    for w in ("peers", "streams", "routes", "config", "stats", "puts",
              "store"):
        assert re.search(r"^\s+%s\s+\S" % w, r.stdout, re.M), r.stdout
    r = run(f.path, "help", "lo")
    assert "log level warn|info|debug" in r.stdout
    assert re.search(r"^\s+debug\s+\S", r.stdout, re.M), r.stdout
    r = run(f.path, "help", "nosuch")
    assert r.returncode == 2
    assert "unknown command 'nosuch'" in r.stderr
    assert f.connections == 0


@pytest.mark.parametrize("args,message", [
    (["s"], "relayctl: ambiguous command 's', could be: status show"),
    (["frobnicate"], "relayctl: unknown command 'frobnicate', expected one "
     "of: status show monitor put outcome reload drain peer log help"),
    (["show"], "relayctl: show: missing word, expected "
     "peers|streams|routes|config|stats|puts|store"),
    (["show", "st"], "relayctl: show: ambiguous word 'st', could be: "
     "streams stats store"),
    (["sh", "bogus"], "relayctl: show: unknown word 'bogus', expected one "
     "of: peers streams routes config stats puts store"),
    (["log", "lev", "loud"], "relayctl: log level: unknown word 'loud', "
     "expected one of: warn info debug"),
    (["log", "verbosity", "debug"], "relayctl: log: unknown word "
     "'verbosity', expected one of: level"),
    (["log", "level"], "relayctl: log level: missing word, expected "
     "warn|info|debug"),
    (["status", "extra"], "relayctl: status: wrong number of arguments"),
    (["show", "peers", "extra"], "relayctl: show: wrong number of "
     "arguments"),
    (["outcome"], "relayctl: outcome: wrong number of arguments"),
    (["outcome", "xyz"], "relayctl: bad put id (want 32 hex digits)"),
    (["put", "onlykey"], "relayctl: put: wrong number of arguments"),
    (["put", "-b", "300", "k", "/dev/null"], "relayctl: bad hop count"),
    (["drain", "-x"], "relayctl: unknown option -x"),
])
def test_usage_errors_exit_2_before_connecting(fake, args, message):
    """Unknown, ambiguous or missing words, bad operands: exit 2 with a
    message naming the candidates, then the usage line; relayd is never
    contacted."""
    f = fake()
    r = run(f.path, *args)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert r.stderr.startswith(message), r.stderr
    # A bad command word has no usage line of its own; the rest show it.
    has_usage = "usage: relayctl [-jv] [-s socket] %s" % args[0] in r.stderr
    assert has_usage == (args[0] not in ("s", "frobnicate")), r.stderr
    assert r.stdout == ""
    assert f.connections == 0


@pytest.mark.parametrize("args,request_", [
    (["st"], {"cmd": "status"}),
    (["sh", "pe"], {"cmd": "show", "what": "peers"}),
    (["sh", "pu"], {"cmd": "show", "what": "puts"}),
    (["show", "str"], {"cmd": "show", "what": "streams"}),
    (["show", "r"], {"cmd": "show", "what": "routes"}),
    (["show", "c"], {"cmd": "show", "what": "config"}),
    (["show", "sta"], {"cmd": "show", "what": "stats"}),
    (["o", PUT_ID.upper()], {"cmd": "outcome", "put_id": PUT_ID}),
    (["r"], {"cmd": "reload"}),
    (["dr"], {"cmd": "drain"}),
    (["l", "l", "d"], {"cmd": "log", "level": "debug"}),
    (["log", "level", "w"], {"cmd": "log", "level": "warn"}),
    (["log", "level", "info"], {"cmd": "log", "level": "info"}),
])
def test_unique_prefixes_send_the_full_words(fake, args, request_):
    """A unique prefix of a command or a word is sent as the full word."""
    f = fake()
    r = run(f.path, "-j", *args)
    assert r.returncode == 0, r.stderr
    assert f.requests == [request_]
    assert json.loads(r.stdout) == {"ok": True}


def test_verbose_traces_the_conversation(fake):
    """-v shows each request and answer line on stderr, stdout stays the
    human answer."""
    f = fake([{"ok": True, "level": "debug"}])
    r = run(f.path, "-v", "log", "level", "de")
    assert r.returncode == 0, r.stderr
    assert '> {"cmd":"log","level":"debug"}' in r.stderr, r.stderr
    assert '< {"ok": true, "level": "debug"}' in r.stderr, r.stderr
    assert r.stdout == "log level is now debug\n"


def test_failure_answer_exits_1_and_lost_connection_exits_3(fake, tmp_path):
    """"ok": false prints `relayctl: <error>` and exits 1 (in both forms);
    a daemon that closes without an answer, or no daemon at all, is exit
    3."""
    f = fake([{"ok": False, "error": "no can do"}])
    for extra in ([], ["-j"]):
        r = run(f.path, *(extra + ["drain"]))
        assert r.returncode == 1, r.stderr
        assert r.stderr == "relayctl: no can do\n"
    assert json.loads(r.stdout) == {"ok": False, "error": "no can do"}
    r = run(f.path, "reload")
    assert (r.returncode, r.stdout) == (1, "FAIL: no can do\n")

    gone = fake(None)
    r = run(gone.path, "status")
    assert r.returncode == 3
    assert "connection to relayd lost" in r.stderr
    r = run(gone.path, "monitor")
    assert r.returncode == 3

    r = run(str(tmp_path / "nobody.sock"), "status")
    assert r.returncode == 3
    assert "cannot reach relayd" in r.stderr


def test_monitor_prints_events_and_ends_on_relayd_final_line(fake):
    """monitor (fake relayd): events are one human line each with a local
    timestamp, an event's own "ok" does not end it, relayd's final line
    does (exit 0); with -j each line is printed as one JSON object."""
    t_us = 1700000000123456
    lines = [{"ok": True, "event": "monitoring"},
             {"stream": 4, "put_id": PUT_ID, "key": "k", "size": 1024,
              "from": "hop0", "event": "stream-opened", "time_us": t_us},
             {"stream": 4, "key": "k", "ok": True, "reason": "",
              "event": "stream-done", "time_us": t_us + 1000},
             {"peer": "hop1", "reason": "connection closed",
              "event": "peer-down", "time_us": t_us + 2000},
             {"ok": True, "end": "relayd stopping"}]
    f = fake(lines)
    r = run(f.path, "monitor")
    assert r.returncode == 0, r.stderr
    stamp = time.strftime("%H:%M:%S", time.localtime(t_us // 1000000))
    out = r.stdout.splitlines()
    assert out[0] == ("%s.123 stream-opened stream=4 key=k size=1024 "
                      "from=hop0 put_id=%s" % (stamp, PUT_ID)), out
    assert out[1] == "%s.124 stream-done stream=4 key=k ok=true" % stamp
    assert out[2] == ('%s.125 peer-down peer=hop1 reason="connection '
                      'closed"' % stamp)
    assert out[3] == "relayd closed the monitor: relayd stopping"
    assert f.requests == [{"cmd": "monitor"}]

    r = run(f.path, "-j", "monitor")
    assert r.returncode == 0, r.stderr
    assert [json.loads(ln) for ln in r.stdout.splitlines()] == lines

    f = fake([{"ok": False, "error": "too many monitors"}])
    r = run(f.path, "monitor")
    assert (r.returncode, r.stderr) == (1, "relayctl: too many monitors\n")


# ------------------------------------------------------- real relayd

def test_status_and_show_in_json_and_human_form(chain):
    """status and show peers/routes/config/stats answer with the fields
    of ctl.h (-j) and tables/lines holding them (human form)."""
    hop0, hop1 = two_hops(chain)
    wait_for(lambda: any(p.get("state") == "up" for p in
                         ctl_json(hop0, "status").get("peers", [])),
             10, "hop0's link to hop1 up")
    rc, js = put(hop0, "k/status", b"s" * 3000)
    assert rc == 0, js

    st = ctl_json(hop0, "st")
    assert st["ok"] is True and st["node"] == "hop0"
    assert st["generation"] == 1
    assert isinstance(st["uptime_s"], float) and st["buffered"] == 0
    peer = st["peers"][0]
    assert {k: peer[k] for k in ("name", "address", "direction", "state")} \
        == {"name": "hop1", "address": hop1.address, "direction": "out",
            "state": "up"}
    assert peer["bytes_out"] > 3000 and peer["bytes_in"] > 0
    assert peer["streams"] == 0
    out = ctl_human(hop0, "status")
    assert out.startswith("node hop0  uptime ")
    assert re.search(r"^hop1\s+%s\s+out\s+up\s+enabled\s+1\s+0\s+\d+\s+"
                     r"\d+\s+\S+\s+\d+\.\ds\s+-\s+-\s+-$"
                     % re.escape(hop1.address), out, re.M), out
    assert "streams: 0" in out

    peers = ctl_json(hop1, "show", "peers")
    assert [(p["name"], p["direction"], p["state"]) for p in
            peers["peers"]] == [("hop0", "in", "up")]
    assert peers["peers"][0]["bytes_in"] > 3000
    out = ctl_human(hop1, "show", "pe")
    assert re.match(r"NAME\s+ADDRESS\s+DIR\s+STATE\s+ADMIN\s+GEN\s+"
                    r"STREAMS\s+BYTES_IN\s+BYTES_OUT\s+RTT_MS\s+AGE\s+TLS\s+"
                    r"SUBJECT\s+CERT_EXPIRES\n", out), out
    assert re.search(r"^hop0\s+\S+\s+in\s+up\s+-\s+1\s", out, re.M), out

    routes = ctl_json(hop0, "show", "routes")
    assert routes["generation"] == 1
    assert routes["routes"] == [{"prefix": "", "mode": "fanout",
                                 "store": False, "hops": ["hop1"]}]
    out = ctl_human(hop1, "show", "routes")
    assert out.splitlines()[0] == "generation 1"
    assert re.search(r'^""\s+fanout\s+yes\s+-$', out, re.M), out

    conf = ctl_json(hop0, "show", "config")
    assert conf["generation"] == 1 and conf["path"] == hop0.conf_path
    c = conf["config"]
    assert c["node_id"] == "hop0" and c["listen"] == hop0.address
    assert c["control_socket"] == hop0.socket
    assert c["stream_inactivity_timeout"] == 10.0
    assert c["tls"] == {"enabled": False}
    assert [(p["name"], p["address"], p["rate_limit"]) for p in
            c["peers"]] == [("hop1", hop1.address, 0)]
    out = ctl_human(hop0, "show", "config")
    assert out.startswith("# %s, generation 1\n" % hop0.conf_path)
    assert 'node_id = "hop0"\n' in out
    assert "stream_inactivity_timeout = 10.000\n" in out
    assert "tls {\n  enabled = false\n}\n" in out
    assert re.search(r"^  hop1\s+%s\s+0\s" % re.escape(hop1.address), out,
                     re.M), out

    stats = ctl_json(hop1, "show", "stats")["stats"]
    for k in ("puts_received", "puts_stored", "puts_failed",
              "puts_forwarded", "stores_ok", "stores_failed", "payload_in",
              "payload_out", "tls_handshakes", "active_streams", "buffered",
              "peers_up"):
        assert isinstance(stats[k], int), (k, stats)
    for k in ("puts_refused", "streams_aborted", "forks_aborted",
              "tls_refused"):
        assert isinstance(stats[k], dict), (k, stats)
    assert (stats["puts_received"], stats["stores_ok"],
            stats["payload_in"], stats["peers_up"]) == (1, 1, 3000, 1)
    out = ctl_human(hop1, "show", "stats")
    assert re.search(r"^stores_ok\s+1$", out, re.M), out
    assert re.search(r"^payload_in\s+3000$", out, re.M), out
    assert re.search(r"^puts_refused:\n  \S+\s+\d+$", out, re.M), out


def test_show_streams_lists_a_put_in_flight(chain):
    """show streams during a slow PUT: the JSON entry has the fields of
    ctl.h, the human table its id, key, size, upstream and fork."""
    hop0, hop1 = two_hops(chain, rate_limit={0: 256 << 10})
    data = os.urandom(768 << 10)
    bg = put_bg(hop0, "k/slow", data)

    def entry():
        for s in ctl_json(hop0, "show", "streams")["streams"]:
            if s["key"] == "k/slow" and s["forks"]:
                return s
        return None
    s = wait_for(entry, 10, "k/slow in hop0's show streams")
    assert s["size"] == len(data) and s["upstream"] == "control"
    assert s["store"] == "none" and len(s["put_id"]) == 32
    assert s["forks"][0]["peer"] == "hop1"
    for k in ("id", "bytes_in", "first_us", "last_us", "age_s"):
        assert k in s, (k, s)
    out = ctl_human(hop0, "show", "streams")
    assert re.search(r"^%d\s+k/slow\s+%d\s+\d+\s+control\s+none\s+[\d.]+s\s+"
                     r"hop1:\d+:\S+$" % (s["id"], len(data)), out, re.M), out
    rc, js = bg.finish(30)
    assert rc == 0, js
    assert_stored(hop1, "k/slow", data)
    wait_for(lambda: ctl_human(hop0, "show", "streams") == "no streams\n",
             5, "hop0 to show no streams")


def test_show_peers_and_config_describe_tls(chain, certs):
    """Over TLS, show peers gives the TLS version, cipher and subject of
    the link and show config the tls block."""
    opts = {i: {"tls": certs.tls("hop%d" % i)} for i in (0, 1)}
    hop0, hop1 = two_hops(chain, hop_opts=opts)

    def up():
        ps = ctl_json(hop0, "show", "peers")["peers"]
        return ps and ps[0]["state"] == "up" and ps[0]
    peer = wait_for(up, 10, "hop0's TLS link to hop1 up")
    assert peer["tls"]["version"] == "TLSv1.3"
    assert "hop1" in peer["tls"]["subject"]
    out = ctl_human(hop0, "show", "peers")
    assert re.search(r"^hop1\s.*\sTLSv1\.3 %s\s+.*hop1" %
                     re.escape(peer["tls"]["cipher"]), out, re.M), out
    c = ctl_json(hop0, "show", "config")["config"]
    assert c["tls"]["enabled"] is True
    assert c["tls"]["cert"] == opts[0]["tls"]["cert"]
    out = ctl_human(hop0, "show", "config")
    assert "tls {\n  enabled = true\n" in out
    assert '  cert = "%s"\n' % opts[0]["tls"]["cert"] in out


def test_monitor_shows_stream_and_peer_events(chain):
    """relayctl -j monitor on hop0 prints stream-opened and stream-done
    for a PUT made while it runs, then peer-down and peer-up when hop1 is
    stopped and started; the human monitor prints the same as timestamped
    lines and exits 0 on SIGINT."""
    hop0, hop1 = two_hops(chain)
    mon, lines = start_monitor(hop0)
    hmon, hlines = start_monitor(hop0, json_mode=False)
    lines.wait_for(json_event("monitoring"), 5, "the monitoring answer")
    # The human monitor prints nothing until the first event: make sure
    # it is subscribed before the PUT by a PUT of its own.
    assert put(hop0, "k/warmup", b"w")[0] == 0
    hlines.wait_for(lambda ln: "stream-done" in ln and "key=k/warmup" in ln,
                    5, "the warm-up PUT in the human monitor")

    rc, js = put(hop0, "k/mon", b"m" * 4096, put_id=PUT_ID)
    assert rc == 0, js
    opened = json.loads(lines.wait_for(
        json_event("stream-opened", key="k/mon"), 5, "stream-opened"))
    assert (opened["put_id"], opened["size"], opened["from"]) == \
        (PUT_ID, 4096, "control")
    assert isinstance(opened["time_us"], int) and opened["stream"] > 0
    done = json.loads(lines.wait_for(
        json_event("stream-done", key="k/mon"), 5, "stream-done"))
    assert (done["ok"], done["stream"]) == (True, opened["stream"])
    ln = hlines.wait_for(lambda ln: "stream-opened" in ln and "key=k/mon" in
                         ln, 5, "stream-opened in the human monitor")
    assert re.match(r"^\d\d:\d\d:\d\d\.\d{3} stream-opened stream=%d "
                    r"key=k/mon size=4096 from=control " % opened["stream"],
                    ln), ln

    hop1.stop()
    down = json.loads(lines.wait_for(json_event("peer-down", peer="hop1"),
                                     10, "peer-down"))
    assert (down["direction"], down["address"]) == ("out", hop1.address)
    hop1.stop_rc = None
    hop1.start()
    lines.wait_for(json_event("peer-up", peer="hop1", direction="out"), 15,
                   "peer-up")
    hlines.wait_for(lambda ln: re.match(r"^\S+ peer-up peer=hop1 ", ln), 5,
                    "peer-up in the human monitor")

    assert end_proc(hmon, signal.SIGINT) == 0, hmon.stderr.read()
    assert end_proc(mon) == 0, mon.stderr.read()


def test_monitor_ends_when_relayd_stops(make_relay):
    """relayd stopping sends monitors a final "ok" line: relayctl -j
    monitor prints it and exits 0."""
    r = make_relay("solo").start()
    mon, lines = start_monitor(r)
    lines.wait_for(json_event("monitoring"), 5, "the monitoring answer")
    assert r.stop() == 0
    rest = lines.rest(10)
    assert mon.wait(5) == 0, (rest, mon.stderr.read())
    last = json.loads(rest[-1]) if rest else {}
    assert last.get("ok") is True and "event" not in last, rest


def test_outcome_of_a_put_id(chain):
    """After put -i ID, outcome ID says done and stored with the per-hop
    table; an id relayd never saw is unknown."""
    hop0, hop1 = two_hops(chain)
    rc, js = put(hop0, "k/outcome", b"o" * 2048, put_id=PUT_ID)
    assert rc == 0, js

    oc = ctl_json(hop0, "outcome", PUT_ID)
    assert (oc["ok"], oc["put_id"], oc["state"], oc["stored"]) == \
        (True, PUT_ID, "done", True)
    by_node = results_by_node(oc)
    assert by_node["hop1"]["status"] == "stored"
    assert by_node["hop1"]["depth"] == 1 and by_node["hop1"]["bytes"] == 2048
    assert by_node["hop0"]["status"] == "forwarded"
    out = ctl_human(hop0, "outc", PUT_ID.upper())
    assert out.startswith("put_id  %s\nstate   done\nstored  yes\n" % PUT_ID)
    assert re.search(r"^DEPTH\s+NODE\s+VIA\s+STATUS\s+BYTES", out, re.M), out
    assert re.search(r"^1\s+hop1\s+hop1\s+stored\s+2048\s", out, re.M), out

    oc = ctl_json(hop0, "outcome", OTHER_ID)
    assert (oc["ok"], oc["state"], oc["stored"], oc["results"]) == \
        (True, "unknown", False, [])
    out = ctl_human(hop0, "outcome", OTHER_ID)
    assert "state   unknown\nstored  no\n" in out
    assert "DEPTH" not in out


def test_reload_good_config_then_broken_config(make_relay):
    """reload takes an edited config as a higher generation (its routes
    show); a broken config is refused with FILE:LINE and exit 1, and the
    running generation stays."""
    r = make_relay("solo").start()
    assert ctl_json(r, "show", "routes")["generation"] == 1

    r.routes = [{"prefix": "a/", "hops": [], "store": True},
                {"prefix": "", "hops": [], "store": False}]
    r.write_config()
    js = ctl_json(r, "reload")
    assert js == {"ok": True, "generation": 2}
    routes = ctl_json(r, "show", "routes")
    assert routes["generation"] == 2
    assert [(x["prefix"], x["store"]) for x in routes["routes"]] == \
        [("a/", True), ("", False)]
    assert ctl_human(r, "rel") == "OK generation 3\n"

    with open(r.conf_path, "a") as f:
        f.write("this is not libconfig\n")
    nlines = len(r.config_text().splitlines()) + 1
    res = ctl(r, "reload")
    assert res.returncode == 1, res
    m = re.match(r"FAIL: %s:(\d+): \S" % re.escape(r.conf_path), res.stdout)
    assert m and int(m.group(1)) == nlines, res.stdout
    assert res.stderr.startswith("relayctl: %s:%d: " % (r.conf_path, nlines))
    js = ctl_json(r, "reload", rc=1)
    assert js["ok"] is False
    assert js["error"].startswith("%s:%d: " % (r.conf_path, nlines))
    assert ctl_json(r, "status")["generation"] == 3
    assert ctl_json(r, "show", "routes")["generation"] == 3


def test_drain_makes_relayd_exit_once_idle(make_relay):
    """drain answers with the streams in flight (none here) and relayd
    then exits 0 by itself; the human form says how many streams."""
    a = make_relay("a").start()
    js = ctl_json(a, "drain")
    assert js == {"ok": True, "draining": True, "streams": 0}
    assert a.proc.wait(10) == 0
    b = make_relay("b").start()
    assert ctl_human(b, "dr") == "draining: 0 streams in flight\n"
    assert b.proc.wait(10) == 0
    res = ctl(b, "status")
    assert res.returncode == 3, res


def test_log_level_changes_what_relayd_logs(make_relay):
    """log level debug, then status: debug lines ("<7>") appear in the
    log; log level warn, then status: none until the level is info
    again."""
    r = make_relay("solo").start()
    off = r.log_size()
    assert ctl_human(r, "log", "level", "debug") == \
        "log level is now debug\n"
    ctl_json(r, "status")
    wait_for(lambda: re.search(r"^<7>", r.log_since(off), re.M), 5,
             "a debug line in the log")

    assert ctl_json(r, "log", "level", "w") == {"ok": True, "level": "warn"}
    off = r.log_size()
    ctl_json(r, "status")
    ctl_json(r, "show", "stats")
    assert ctl_json(r, "log", "le", "i") == {"ok": True, "level": "info"}
    wait_for(lambda: "log level set to info" in r.log_since(off), 5,
             "the level change to info logged")
    assert not re.search(r"^<7>", r.log_since(off), re.M), r.log_since(off)


def test_relayctl_links_only_what_it_uses():
    """relayctl is linked with libc and jansson only: status and show do
    not map libcrypto, libssl, libconfig, libevent or libsystemd at start
    (put loads libcrypto when it hashes a file)."""
    out = subprocess.run(["ldd", RELAYCTL], capture_output=True, text=True,
                         check=True).stdout
    for lib in ("libcrypto", "libssl", "libconfig", "libevent",
                "libsystemd"):
        assert lib not in out, "relayctl links %s:\n%s" % (lib, out)
    # A status start maps no libcrypto either: LD_DEBUG lists every
    # object the loader opens.
    env = dict(os.environ, LD_DEBUG="files")
    r = subprocess.run([RELAYCTL, "-s", "/nonexistent/ctl.sock", "status"],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 3
    assert "libcrypto" not in r.stderr
