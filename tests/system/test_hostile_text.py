"""Text a peer wrote reaches show peers, monitor, show puts and outcome
escaped, never raw and never lost.

A next hop answers a forwarded PUT with an ABORT whose reason has an
invalid UTF-8 byte and a control character, then sends a GOAWAY with the
same kind of text and closes; another PUT gets a RESULT whose entry
names a node with a backslash and a quote (node ids are printable on
the wire) and a reason with such bytes.  relayctl -j show peers,
-j monitor, -j show puts and -j outcome all answer, as valid JSON, and
every string in them is printable ASCII with the bytes as \\xNN.
"""

import json
import os
import select
import subprocess
import time

from conftest import RELAYCTL, ctl_json, register
import protoutil as U
import relaywire as W

BAD = b"bad\xff\x01text"


def strings(v):
    if isinstance(v, str):
        yield v
    elif isinstance(v, dict):
        for k, x in v.items():
            yield k
            yield from strings(x)
    elif isinstance(v, list):
        for x in v:
            yield from strings(x)


def printable(v):
    return all(0x20 <= ord(c) <= 0x7e for s in strings(v) for c in s)


class Lines:
    """A monitor's output, line by line, read from its pipe unbuffered
    (a buffered reader would hide lines it has read ahead from select)."""

    def __init__(self, proc):
        self.fd = proc.stdout.fileno()
        self.buf = b""

    def next(self, deadline):
        while b"\n" not in self.buf:
            r, _, _ = select.select([self.fd], [], [],
                                    max(0.0, deadline - time.monotonic()))
            assert r, "monitor said nothing before the deadline"
            chunk = os.read(self.fd, 65536)
            assert chunk, "monitor ended"
            self.buf += chunk
        ln, self.buf = self.buf.split(b"\n", 1)
        return ln


def monitor_until(lines, pred, t=10):
    """Monitor lines (parsed) up to the first for which pred is true."""
    deadline = time.monotonic() + t
    seen = []
    while True:
        ev = json.loads(lines.next(deadline))
        seen.append(ev)
        if pred(ev):
            return seen


def test_hostile_text_escaped(make_relay):
    d = U.Downstream()
    r = U.relay(make_relay, [d], connect_timeout=1.0)
    d.accept()
    mon = register(subprocess.Popen(
        [RELAYCTL, "-s", r.socket, "-j", "monitor"], stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL))
    lines = Lines(mon)
    try:
        monitor_until(lines, lambda e: e.get("event") == "monitoring")
        up = U.upstream(r)
        # A RESULT whose node and reason hold hostile bytes.
        data = U.payload(3000)
        U.put_all(up, "f/res", data)
        p1 = d.expect_put()
        d.read_stream(p1.stream)
        d.result(p1.stream, [U.entry(W.RES_FAILED, 0, b'no\\de"x',
                                     len(data), reason=BAD)])
        # An ABORT with one, then a GOAWAY with one and the close.
        U.put_all(up, "f/abort", data)
        p2 = d.expect_put()
        d.send_raw(W.enc_abort(p2.stream, 1, BAD))
        seen = monitor_until(lines, lambda e: e.get("event") == "stream-done"
                             and e.get("key") == "f/abort")
        d.send_raw(W.enc_goaway(1, BAD))
        d.close()
        seen += monitor_until(lines, lambda e: e.get("event") == "peer-down"
                              and e.get("peer") == "down")
        up.close()
    finally:
        mon.terminate()
        mon.wait(10)
    assert printable(seen), seen

    peers = ctl_json(r, "show", "peers")
    assert printable(peers), peers
    assert [p["name"] for p in peers["peers"]
            if p["direction"] == "out"] == ["down"], peers
    puts = ctl_json(r, "show", "puts")
    assert printable(puts), puts
    reasons = " ".join(p.get("reason") or "" for p in puts["puts"])
    assert "bad\\xff\\x01text" in reasons, puts
    for p in puts["puts"]:
        o = ctl_json(r, "outcome", p["put_id"])
        assert printable(o), o
    o = [ctl_json(r, "outcome", p["put_id"]) for p in puts["puts"]
         if p["key"] == "f/res"]
    assert len(o) == 1 and o[0]["failing_hop"] == 'no\\\\de\\"x', o
    assert "bad\\xff\\x01text" in list(strings(o)), o
