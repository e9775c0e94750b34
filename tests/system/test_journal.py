"""Structured logs: relayd logs to the journal when stderr is the journal.

No journald runs here.  The test stands in for it: relayd runs in a
private mount namespace (unshare -m; the suite runs as root) whose
/run/systemd/journal is a directory of the test's, where the test has
bound the datagram socket sd_journal_send(3) writes to, and its stderr is
a file whose device:inode the test puts in JOURNAL_STREAM, as systemd
does.  Each datagram is decoded as the native journal protocol (FIELD=value
lines, and the binary-safe form: FIELD, newline, 64-bit little-endian
length, value, newline).

Behaviour proved:
- with JOURNAL_STREAM naming its stderr, relayd's lines are journal
  entries (MESSAGE=, PRIORITY=, SYSLOG_IDENTIFIER=relayd) and not stderr
  lines; every line about a PUT carries PUT_ID= (so `journalctl
  PUT_ID=...` follows it), KEY= and, where one applies, PEER= and
  REASON=: a stored PUT from relayctl, and one whose upstream peer goes
  away mid-stream (REASON= says why, PEER= names the peer);
- a key with a newline and an ANSI escape is escaped (\\x0a, \\x1b) in
  MESSAGE= and KEY=, in the plain stderr log, in relayctl's tables and in
  its -j JSON: no field, line or terminal output holds a raw control byte;
- a JOURNAL_STREAM that names another file (stderr redirected) keeps the
  plain "<N>" stderr lines, and no datagram is sent.
"""

import os
import re
import socket
import struct
import subprocess
import time

import pytest

from conftest import (HOST, RELAYD, START_TIMEOUT, put, relayctl,
                      wait_for)
from test_systemd import start_relayd
import relaywire as W

DEADLINE = 10.0
# A key with a newline and an ANSI colour escape in it.
EVIL_KEY = "j/evil\nkey=forged \x1b[31mred"
EVIL_ESC = "j/evil\\x0akey=forged \\x1b[31mred"


def decode(data):
    """The fields of one native-protocol datagram, as {name: [values]}."""
    fields = {}
    i = 0
    while i < len(data):
        nl = data.index(b"\n", i)
        line = data[i:nl]
        if b"=" in line:
            name, value = line.split(b"=", 1)
            i = nl + 1
        else:
            name = line
            (n,) = struct.unpack("<Q", data[nl + 1:nl + 9])
            value = data[nl + 9:nl + 9 + n]
            assert data[nl + 9 + n:nl + 10 + n] == b"\n", data
            i = nl + 10 + n
        fields.setdefault(name.decode(), []).append(value)
    return fields


class Journal:
    """The socket sd_journal_send writes to, seen from the namespace as
    /run/systemd/journal/socket; .entries holds the decoded datagrams."""

    def __init__(self, directory):
        self.dir = os.path.join(directory, "journal")
        os.makedirs(self.dir)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(os.path.join(self.dir, "socket"))
        self.entries = []

    def close(self):
        self.sock.close()

    def drain(self, until):
        """Read datagrams until none comes for 0.2 s or until passes."""
        while time.monotonic() < until:
            self.sock.settimeout(0.2)
            try:
                data = self.sock.recv(1 << 20)
            except socket.timeout:
                return
            self.entries.append(decode(data))

    def wait(self, pred, what, timeout=DEADLINE):
        deadline = time.monotonic() + timeout
        while True:
            for e in self.entries:
                if pred(e):
                    return e
            if time.monotonic() >= deadline:
                pytest.fail("no journal entry with %s within %.0fs; got %r"
                            % (what, timeout, [one(e, "MESSAGE")
                                               for e in self.entries]))
            self.drain(min(deadline, time.monotonic() + 0.5))

    def about(self, put_id):
        return [e for e in self.entries if one(e, "PUT_ID") == put_id]


def one(entry, name):
    """The one value of field name as text, or None."""
    v = entry.get(name)
    if v is None:
        return None
    assert len(v) == 1, (name, v)
    return v[0].decode("utf-8")


def start_in_namespace(relay, journal, stream):
    """relayd -d with /run/systemd/journal bound to journal.dir, and
    JOURNAL_STREAM naming stream's device:inode (stderr is relay.log_path
    unless stream is another file)."""
    if subprocess.run(["unshare", "-m", "true"]).returncode != 0:
        pytest.fail("unshare -m failed: the system tests run as root")
    st = os.stat(stream)
    script = ('mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/journal '
              '&& mount --bind "$0" /run/systemd/journal && exec "$@"')
    open(relay.log_path, "ab").close()
    start_relayd(relay, ["unshare", "-m", "sh", "-c", script, journal.dir,
                         RELAYD, "-d", "-f", relay.conf_path],
                 {"JOURNAL_STREAM": "%d:%d" % (st.st_dev, st.st_ino)})
    relay.wait_ready()


def no_control_bytes(text):
    return not re.search(r"[\x00-\x1f\x7f]", text)


def test_put_lines_carry_journal_fields(make_relay, relay_root):
    relay = make_relay("jrn", store=True, stream_inactivity_timeout=3.0)
    journal = Journal(relay_root)
    try:
        # The log file exists before relayd starts: its inode is stderr's.
        os.makedirs(relay.dir, exist_ok=True)
        open(relay.log_path, "ab").close()
        start_in_namespace(relay, journal, relay.log_path)
        started = journal.wait(lambda e: "relayd started" in
                               (one(e, "MESSAGE") or ""), "relayd started")
        assert one(started, "PRIORITY") == "6"
        assert one(started, "SYSLOG_IDENTIFIER") == "relayd"

        # A PUT from relayctl with a hostile key: stored.
        data = os.urandom(64 * 1024)
        rc, js = put(relay, EVIL_KEY, data)
        assert rc == 0, js
        pid = js["put_id"]
        journal.wait(lambda e: one(e, "PUT_ID") == pid and
                     " done " in one(e, "MESSAGE"), "the PUT's done line")
        mine = journal.about(pid)
        msgs = [one(e, "MESSAGE") for e in mine]
        assert any(" size=" in m for m in msgs), msgs          # opened
        assert any("store=stored" in m for m in msgs), msgs
        for e in mine:
            assert one(e, "KEY") == EVIL_ESC, e
            for name, values in e.items():
                for v in values:
                    assert no_control_bytes(v.decode()), (name, v)
        opened = [e for e in mine if " size=" in one(e, "MESSAGE")][0]
        assert one(opened, "PEER") == "control"
        # The key= field of the line itself cannot be forged either.
        for m in msgs:
            assert "key=forged" not in m.replace("\\x0akey=forged", ""), m

        assert js["results"][0]["status"] == "stored"

        # A PUT whose upstream goes away mid-stream: REASON= and PEER=.
        with W.PeerConn(HOST, relay.port, node="upnode",
                        timeout=START_TIMEOUT) as peer:
            peer.connect()
            sid = peer.put("j/lost\x1b", data)
            peer.send_data(sid, data[:1000])
            journal.wait(lambda e: one(e, "KEY") == "j/lost\\x1b",
                         "the second PUT's opened line")
        failed = journal.wait(
            lambda e: one(e, "KEY") == "j/lost\\x1b" and
            one(e, "REASON") is not None, "the failed PUT's REASON")
        assert one(failed, "PEER") == "upnode", failed
        assert one(failed, "PUT_ID") and \
            re.fullmatch(r"[0-9a-f]{32}", one(failed, "PUT_ID"))
        assert one(failed, "PRIORITY") == "4"
        assert one(failed, "REASON") in one(failed, "MESSAGE")

        # Nothing of either PUT went to stderr: it is the journal's.
        log = relay.log_text()
        assert pid not in log and "j/lost" not in log, log
    finally:
        journal.close()


def test_escaped_everywhere_on_plain_stderr(make_relay):
    """Without a journal: the stderr log, relayctl status/show streams
    tables and -j JSON hold the key escaped, never its raw bytes."""
    relay = make_relay("esc", store=True).start()
    data = os.urandom(256 * 1024)
    with W.PeerConn(HOST, relay.port, node="up", timeout=START_TIMEOUT) \
            as peer:
        peer.connect()
        sid = peer.put(EVIL_KEY, data)
        peer.send_data(sid, data[:1000])
        wait_for(lambda: "j/evil" in relay.log_text(), DEADLINE,
                 "the PUT's log line")
        for args in (["status"], ["show", "streams"]):
            r = relayctl(args, socket_path=relay.socket)
            assert r.returncode == 0, r.stderr
            assert EVIL_ESC in r.stdout or "j/evil\\x0akey" in r.stdout, \
                r.stdout
            assert no_control_bytes(r.stdout.replace("\n", "")), r.stdout
            r = relayctl(["-j"] + args, socket_path=relay.socket)
            assert "\\u001b" not in r.stdout and "\\n" not in r.stdout, \
                r.stdout
            assert "\\\\x1b" in r.stdout, r.stdout
        peer.send_data(sid, data[1000:])
        peer.send_end(sid)
        peer.expect_stream_end(sid, deadline=time.monotonic() + DEADLINE)
    log = relay.log_text()
    for line in log.splitlines():
        assert no_control_bytes(line), repr(line)
    lines = [ln for ln in log.splitlines() if "j/evil" in ln]
    assert lines, log
    for ln in lines:
        # One key= field, escaped as a field (no blank, no newline).
        assert "key=j/evil\\x0akey=forged\\x20\\x1b[31mred" in ln, ln


def test_other_stderr_stays_plain(make_relay, relay_root):
    relay = make_relay("pln", store=True)
    journal = Journal(relay_root)
    other = os.path.join(relay_root, "not-stderr")
    open(other, "w").close()
    try:
        os.makedirs(relay.dir, exist_ok=True)
        start_in_namespace(relay, journal, other)
        wait_for(lambda: "relayd started" in relay.log_text(), DEADLINE,
                 "relayd started on stderr")
        assert re.search(r"(?m)^<6>relayd started", relay.log_text())
        journal.drain(time.monotonic() + 0.5)
        assert journal.entries == []
    finally:
        journal.close()


def test_claimed_node_id_is_escaped(make_relay):
    """A next hop that answers HELLO with another node id is logged with
    that id escaped as one field: a backslash in it is doubled, so an id
    that spells an escape (the wire allows 0x21..0x7e) cannot pass for
    the control byte it names."""
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.bind((HOST, 0))
    lsock.listen(1)
    lsock.settimeout(DEADLINE)
    try:
        relay = make_relay("hel", peers=[
            {"name": "p1", "address": "%s:%d" % lsock.getsockname()}])
        relay.start()
        conn, _ = lsock.accept()
        with conn:
            conn.settimeout(DEADLINE)
            conn.recv(4096)                     # relayd's HELLO
            conn.sendall(W.enc_hello(b"evil\\x1b[31m\"peer=x",
                                     1 << 20, 1 << 20))
            wait_for(lambda: "says its node id" in relay.log_text(),
                     DEADLINE, "the node id warning")
    finally:
        lsock.close()
    line = [ln for ln in relay.log_text().splitlines()
            if "says its node id" in ln][0]
    assert no_control_bytes(line), repr(line)
    assert line.endswith('is evil\\\\x1b[31m\\"peer=x'), line
