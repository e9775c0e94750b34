"""The bench's load generator (scripts/loadgen.c, $(BUILD)/loadgen) does
what scripts/bench --load relies on.

Behaviour proved: `loadgen wire` with 4 PUTs in flight over long-lived
links into hop1 of hop1 -> hop2 (hop2 stores) reports 20 good PUTs of
4 KiB, each RESULT listing both hops; hop2 holds load/0 .. load/19, each
exactly the payload variant the page's rule makes (splitmix64 seeded by
size and variant, recomputed here) and with the SHA-256 loadgen reported.
`loadgen raw` through nothing into `loadgen sink` gets 20 good answers and
the sink counts 20 good; a payload with one byte changed gets 'F' and is
counted bad.  No timing is asserted.
"""

import hashlib
import json
import os
import socket
import struct
import subprocess

from conftest import BUILD, HOST, free_port, register, kill_proc, wait_for

LOADGEN = os.path.join(BUILD, "loadgen")
SIZE = 4096
COUNT = 20
M64 = (1 << 64) - 1


def splitmix(state):
    state = (state + 0x9e3779b97f4a7c15) & M64
    z = state
    z = ((z ^ (z >> 30)) * 0xbf58476d1ce4e5b9) & M64
    z = ((z ^ (z >> 27)) * 0x94d049bb133111eb) & M64
    return state, z ^ (z >> 31)


def variant(size, v):
    """The bytes of payload variant v of size (loadgen.c variant_fill)."""
    s = (size * 1315423911 + v) & M64
    out = bytearray()
    while len(out) < size:
        s, x = splitmix(s)
        out += struct.pack("<Q", x)
    return bytes(out[:size])


def run(args, timeout=30):
    r = subprocess.run([LOADGEN] + args, stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=timeout, text=True)
    return r.returncode, json.loads(r.stdout.strip().splitlines()[-1]), \
        r.stderr


def test_wire_puts_stored(chain):
    assert os.access(LOADGEN, os.X_OK), "%s not built" % LOADGEN
    hop1, hop2 = chain(2, first=1)
    rc, res, err = run(["wire", "--port", str(hop1.port), "--conc", "4",
                        "--size", str(SIZE), "--count", str(COUNT),
                        "--entries", "2", "--timeout", "20"])
    assert rc == 0, (res, err)
    assert (res["good"], res["bad"], res["error"]) == (COUNT, 0, None)
    assert res["p50_us"] > 0 and res["max_us"] >= res["p99_us"] >= \
        res["p50_us"]
    for n in range(COUNT):
        with open(hop2.stored_path("load/%d" % n), "rb") as f:
            data = f.read()
        assert data == variant(SIZE, n % 16), n
        assert hashlib.sha256(data).hexdigest() == res["variants"][n % 16]
    assert len([f for f in hop2.store_files() if f.startswith("load")]) \
        == COUNT


def sink_counts(sink):
    sink.stdin.write("stats\n")
    sink.stdin.flush()
    return json.loads(sink.stdout.readline())


def test_raw_through_sink(tmp_path):
    assert os.access(LOADGEN, os.X_OK), "%s not built" % LOADGEN
    port = free_port()
    sink = register(subprocess.Popen(
        [LOADGEN, "sink", "--port", str(port), "--max-size", str(SIZE)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        start_new_session=True))
    try:
        assert json.loads(sink.stdout.readline()) == {"ready": True}
        rc, res, err = run(["raw", "--port", str(port), "--conc", "4",
                            "--size", str(SIZE), "--count", str(COUNT),
                            "--timeout", "20"])
        assert rc == 0, (res, err)
        assert (res["good"], res["bad"]) == (COUNT, 0)
        bad = bytearray(variant(SIZE, 3))
        bad[100] ^= 1
        with socket.create_connection((HOST, port), timeout=10) as s:
            s.sendall(struct.pack(">QQ", 3, SIZE) + bad)
            assert s.recv(1) == b"F"
        wait_for(lambda: sink_counts(sink)["bad"] >= 1, 10,
                 "the sink to count the changed PUT as bad")
        c = sink_counts(sink)
        assert (c["good"], c["bad"]) == (COUNT, 1), c
        assert "SHA-256" in c["error"]
    finally:
        kill_proc(sink)
