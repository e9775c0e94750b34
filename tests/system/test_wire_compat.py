"""relaywire.py and src/wire.c agree byte for byte.

Behaviour proved: the Python peer protocol implementation used by the
system tests encodes every frame type exactly as the C encoder does
(including which out-of-range fields and too-small buffers are refused),
and both decoders give the same verdict (consumed length or error code)
and the same fields on valid frames, truncated frames, single-field
corruptions and random bytes.  The C side is compiled at test time from
src/wire.c and tests/system/wirecheck.c (with ASan/UBSan when available,
so an out-of-bounds read on malformed input fails the test too).
"""

import hashlib
import os
import random
import shutil
import struct
import subprocess

import pytest

import relaywire as W

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.normpath(os.path.join(HERE, "..", "..", "src"))

BASE_FLAGS = ["-std=c11", "-D_GNU_SOURCE", "-O1", "-g", "-Wall", "-Wextra",
              "-I", SRC]
SAN_FLAGS = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer",
             "-fno-sanitize-recover=undefined"]


@pytest.fixture(scope="module")
def wirecheck(tmp_path_factory):
    """Path of the compiled harness."""
    cc = shutil.which("cc")
    assert cc, "no C compiler (cc) on PATH"
    src = os.path.join(SRC, "wire.c")
    assert os.path.exists(src), "src/wire.c is missing"
    out = str(tmp_path_factory.mktemp("wirecheck") / "wirecheck")
    cmd = [cc] + BASE_FLAGS
    files = [os.path.join(HERE, "wirecheck.c"), src, "-o", out]
    r = subprocess.run(cmd + SAN_FLAGS + files, capture_output=True,
                       text=True)
    if r.returncode != 0:
        r = subprocess.run(cmd + files, capture_output=True, text=True)
    assert r.returncode == 0, "compiling wirecheck failed:\n" + r.stderr
    return out


def run_check(binary, lines):
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0:abort_on_error=0",
               UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
    r = subprocess.run([binary], input="\n".join(lines) + "\n",
                       capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 0, "wirecheck failed (rc %d):\n%s" % (
        r.returncode, r.stderr[-4000:])
    out = r.stdout.splitlines()
    assert len(out) == len(lines), "wirecheck stopped early:\n" + r.stderr
    return out


def hx(b):
    return b.hex() if b else "-"


# ------------------------------------------------------------ encoders

def py_enc(fn, cap=None):
    try:
        b = fn()
    except ValueError:
        return "-1"
    if cap is not None and len(b) > cap:
        return "-1"
    return hx(b)


def printable(rng, n):
    return bytes(rng.randrange(0x21, 0x7f) for _ in range(n))


def encoder_cases(rng):
    """(command line, expected line) pairs."""
    cases = []

    def add(cmd, fn):
        cases.append((cmd, py_enc(fn)))

    for stream, ln, t in [(0, 0, 1), (7, 65536, 3), (0xFFFFFFFF, 5, 10),
                          (12, 0xFFFFFFFF, 255)]:
        cases.append(("hdr %d %d %d" % (ln, t, stream),
                      hx(W.hdr(ln, t, stream))))
    for nl in [0, 1, 2, 17, 63, 64, 65]:
        for cw, sw in [(0, 0), (4 << 20, 1 << 20), (0x7FFFFFFF, 1),
                       (0x80000000, 1), (1, 0xFFFFFFFF)]:
            node = printable(rng, nl)
            add("hello %d %d %s" % (cw, sw, hx(node)),
                lambda node=node, cw=cw, sw=sw: W.enc_hello(node, cw, sw))
    for stream in [0, 1, 2, 0xFFFFFFFF]:
        for kl in [0, 1, 100, 511, 512, 513]:
            for size in [0, 1, 259072, 2 ** 64 - 1]:
                pid = rng.randbytes(16)
                sha = rng.randbytes(32)
                key = printable(rng, kl)
                hops = rng.choice([0, 1, 16, 255])
                add("put %d %s %d %d %s %s" % (stream, hx(pid), hops, size,
                                               hx(sha), hx(key)),
                    lambda a=(stream, pid, hops, key, size, sha):
                    W.enc_put(*a))
    for stream in [0, 1, 2, 0xFFFFFFFF]:
        for ln in [0, 1, 1130, 65535, 65536, 65537, 0xFFFFFFFF]:
            add("datahdr %d %d" % (stream, ln),
                lambda s=stream, n=ln: W.enc_data_hdr(s, n))
        add("end %d" % stream, lambda s=stream: W.enc_end(s))
        for ml in [0, 1, 200, 512, 513]:
            msg = printable(rng, ml)
            code = rng.choice([0, 1, 4, 11, 65535])
            add("abort %d %d %s" % (stream, code, hx(msg)),
                lambda s=stream, c=code, m=msg: W.enc_abort(s, c, m))
        for inc in [0, 1, 65536, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF]:
            add("credit %d %d" % (stream, inc),
                lambda s=stream, i=inc: W.enc_credit(s, i))
    for ml in [0, 1, 512, 513]:
        msg = printable(rng, ml)
        add("goaway 8 %s" % hx(msg), lambda m=msg: W.enc_goaway(8, m))
    for pong in (0, 1):
        for op in [0, 1, 2 ** 64 - 1, 0x0102030405060708]:
            add("ping %d %d" % (pong, op),
                lambda p=pong, o=op: W.enc_ping(o, pong=bool(p)))
    for stream in [0, 3]:
        for n in [0, 1, 3, 11, 255, 256]:
            ents = []
            for i in range(n):
                nl = rng.choice([1, 5, 64]) if n < 255 else 64
                rl = rng.choice([0, 10, 512]) if n < 255 else 512
                ents.append(W.Entry(rng.choice([1, 2, 3]), i % 256,
                                    printable(rng, nl),
                                    rng.randrange(2 ** 64),
                                    rng.randrange(2 ** 64),
                                    rng.randrange(2 ** 64),
                                    printable(rng, rl)))
            cases.append((result_cmd(stream, ents),
                          py_enc(lambda s=stream, e=ents:
                                 W.enc_result(s, e))))
    # Entries with out-of-range node or reason lengths are refused.
    for nl, rl in [(0, 0), (65, 0), (1, 513)]:
        ents = [W.Entry(1, 0, printable(rng, nl), 1, 2, 3,
                        printable(rng, rl))]
        cases.append((result_cmd(5, ents),
                      py_enc(lambda e=ents: W.enc_result(5, e))))
    return cases


def result_cmd(stream, ents):
    parts = ["result %d %d" % (stream, len(ents))]
    for e in ents:
        parts.append("%d %d %s %d %d %d %s" % (e.status, e.depth, hx(e.node),
                                               e.bytes, e.first_us,
                                               e.last_us, hx(e.reason)))
    return " ".join(parts)


def test_encoders_match(wirecheck):
    """Every encoder produces the same bytes in C and Python, and both
    refuse the same out-of-range fields."""
    rng = random.Random(1)
    cases = encoder_cases(rng)
    out = run_check(wirecheck, [c for c, _ in cases])
    bad = [(c[:100], e[:80], o[:80]) for (c, e), o in zip(cases, out)
           if e != o]
    assert not bad, "%d of %d differ, first: %r" % (len(bad), len(cases),
                                                   bad[:5])
    assert sum(1 for _, e in cases if e != "-1") > 100
    assert sum(1 for _, e in cases if e == "-1") > 20


def test_encoders_respect_cap(wirecheck):
    """An encoder returns -1 when the frame does not fit in cap, and
    writes the frame when it fits exactly."""
    rng = random.Random(2)
    frames = [
        ("hello 100 200 %s" % hx(b"node1"), W.enc_hello(b"node1", 100, 200)),
        ("end 9", W.enc_end(9)),
        ("datahdr 9 100", W.enc_data_hdr(9, 100)),
        ("credit 0 5", W.enc_credit(0, 5)),
        ("ping 0 7", W.enc_ping(7)),
        ("goaway 1 %s" % hx(b"bye"), W.enc_goaway(1, b"bye")),
        ("abort 3 4 %s" % hx(b"slow"), W.enc_abort(3, 4, b"slow")),
    ]
    pid, sha = rng.randbytes(16), rng.randbytes(32)
    frames.append(("put 1 %s 16 42 %s %s" % (hx(pid), hx(sha), hx(b"k/1")),
                   W.enc_put(1, pid, 16, b"k/1", 42, sha)))
    ents = [W.Entry(1, 2, b"hop2", 10, 11, 12, b"")]
    frames.append((result_cmd(3, ents), W.enc_result(3, ents)))
    lines, expect = [], []
    for cmd, frame in frames:
        for cap in (len(frame) - 1, len(frame), len(frame) + 100):
            lines += ["cap %d" % cap, cmd]
            expect += ["ok", "-1" if cap < len(frame) else hx(frame)]
    lines.append("cap 1000000")
    expect.append("ok")
    assert run_check(wirecheck, lines) == expect


# ------------------------------------------------------------ decoder

def py_describe(buf):
    """The line wirecheck prints for `decode`."""
    try:
        r = W.decode(buf)
    except W.WireError as e:
        return "rc=%d" % e.code
    if r is None:
        return "rc=%d" % W.EAGAIN
    n, f = r
    s = "rc=%d type=%d stream=%d len=%d bodyoff=%d" % (
        n, f.type, f.stream, f.len, W.HDR_LEN)
    if f.type == W.HELLO:
        s += " v=%d cw=%d sw=%d node=%s" % (f.version, f.conn_window,
                                             f.stream_window, hx(f.node))
    elif f.type == W.PUT:
        s += " id=%s hops=%d size=%d sha=%s key=%s" % (
            hx(f.put_id), f.hops, f.size, hx(f.sha256), hx(f.key))
    elif f.type in (W.ABORT, W.GOAWAY):
        s += " code=%d msg=%s" % (f.code, hx(f.msg))
    elif f.type == W.RESULT:
        s += " count=%d" % len(f.entries)
        for e in f.entries:
            s += " [%d,%d,%s,%d,%d,%d,%s]" % (e.status, e.depth, hx(e.node),
                                               e.bytes, e.first_us,
                                               e.last_us, hx(e.reason))
    elif f.type == W.CREDIT:
        s += " inc=%d" % f.increment
    elif f.type in (W.PING, W.PONG):
        s += " opaque=%d" % f.opaque
    return s


def valid_frames(rng):
    ents = [W.Entry(rng.choice([1, 2, 3]), d, printable(rng, 1 + d),
                    rng.randrange(2 ** 40), rng.randrange(2 ** 60),
                    rng.randrange(2 ** 60), printable(rng, d * 7))
            for d in range(6)]
    return [
        W.enc_hello(b"relay-1", 4 << 20, 1 << 20),
        W.enc_hello(printable(rng, 64), 0, 0x7FFFFFFF),
        W.enc_hello(b"a.b", 1, 1),
        W.enc_put(1, rng.randbytes(16), 16, b"some/key", 259072,
                  rng.randbytes(32)),
        W.enc_put(0xFFFFFFFE, rng.randbytes(16), 0, printable(rng, 512),
                  2 ** 64 - 1, rng.randbytes(32)),
        W.enc_put(3, rng.randbytes(16), 255, bytes(range(1, 256)), 0,
                  rng.randbytes(32)),
        W.enc_data(5, rng.randbytes(1)),
        W.enc_data(5, rng.randbytes(1130)),
        W.enc_data(5, rng.randbytes(W.MAX_DATA)),
        W.enc_end(7),
        W.enc_abort(9, W.ABORT_TIMEOUT, b"no progress for 0.5s"),
        W.enc_abort(9, 0, b""),
        W.enc_abort(9, 65535, printable(rng, 512)),
        W.enc_goaway(W.ABORT_SHUTDOWN, b"draining"),
        W.enc_goaway(0, b""),
        W.enc_result(11, []),
        W.enc_result(11, ents),
        W.enc_result(2, [W.Entry(3, 255, printable(rng, 64), 0, 0, 0,
                                 printable(rng, 512))] * 255),
        W.enc_credit(0, 1),
        W.enc_credit(13, 0x7FFFFFFF),
        W.enc_ping(0),
        W.enc_ping(2 ** 64 - 1, pong=True),
    ]


def set_u32(b, off, v):
    b = bytearray(b)
    struct.pack_into(">I", b, off, v)
    return bytes(b)


def set_u16(b, off, v):
    b = bytearray(b)
    struct.pack_into(">H", b, off, v)
    return bytes(b)


def set_u8(b, off, v):
    b = bytearray(b)
    b[off] = v
    return bytes(b)


def fix_len(b):
    """Rewrite the header len to match the body actually present."""
    return set_u32(b, 0, len(b) - W.HDR_LEN)


def corruptions(rng):
    """Frames with exactly one thing wrong, and the error each must get."""
    H = W.HDR_LEN
    hello = W.enc_hello(b"node", 10, 10)
    put = W.enc_put(1, rng.randbytes(16), 16, b"key", 10, rng.randbytes(32))
    abort = W.enc_abort(1, 3, b"lost")
    res = W.enc_result(1, [W.Entry(1, 0, b"n0", 1, 2, 3, b"ok"),
                           W.Entry(2, 1, b"n1", 1, 2, 3, b"")])
    c = [
        # header
        (set_u32(W.enc_end(1), 0, W.MAX_BODY + 1), W.ETOOBIG),
        (set_u32(W.enc_end(1), 0, 0xFFFFFFFF), W.ETOOBIG),
        (set_u8(W.enc_end(1), 4, 0), W.ETYPE),
        (set_u8(W.enc_end(1), 4, 11), W.ETYPE),
        (set_u8(W.enc_end(1), 4, 255), W.ETYPE),
        (set_u8(W.enc_end(1), 5, 1), W.EHEADER),
        (set_u8(W.enc_end(1), 6, 1), W.EHEADER),
        (set_u8(W.enc_end(1), 7, 0x80), W.EHEADER),
        (W.raw_frame(W.PUT, 0, put[H:]), W.ESTREAM),
        (W.raw_frame(W.DATA, 0, b"x"), W.ESTREAM),
        (W.raw_frame(W.END, 0), W.ESTREAM),
        (W.raw_frame(W.ABORT, 0, abort[H:]), W.ESTREAM),
        (W.raw_frame(W.RESULT, 0, res[H:]), W.ESTREAM),
        (W.raw_frame(W.HELLO, 1, hello[H:]), W.ESTREAM),
        (W.raw_frame(W.PING, 2, bytes(8)), W.ESTREAM),
        (W.raw_frame(W.PONG, 3, bytes(8)), W.ESTREAM),
        (W.raw_frame(W.GOAWAY, 4, bytes(4)), W.ESTREAM),
        # HELLO
        (set_u8(hello, H, ord("X")), W.EVERSION),
        (set_u16(hello, H + 4, 0), W.EVERSION),
        (set_u16(hello, H + 4, 2), W.EVERSION),
        (set_u16(hello, H + 6, 1), W.EHEADER),
        (set_u32(hello, H + 8, 0x80000000), W.EBODY),
        (set_u32(hello, H + 12, 0xFFFFFFFF), W.EBODY),
        (set_u8(hello, H + 16, 0), W.EBODY),
        (set_u8(hello, H + 16, 5), W.EBODY),
        (set_u8(hello, H + 16, 3), W.EBODY),
        (fix_len(hello + b"x"), W.EBODY),
        (fix_len(hello[:H + 16]), W.EBODY),
        (fix_len(W.enc_hello(b"n", 1, 1)[:-1] + b"\n"), W.EBODY),
        (fix_len(W.enc_hello(b"n", 1, 1)[:-1] + b"\xff"), W.EBODY),
        (fix_len(W.enc_hello(b"a" * 64, 1, 1) + b"a")[:H + 16] +
         b"\x41" + b"a" * 65, W.EBODY),
        # PUT
        (set_u8(put, H + 17, 1), W.EHEADER),
        (set_u16(put, H + 18, 0), W.EBODY),
        (set_u16(put, H + 18, 4), W.EBODY),
        (set_u16(put, H + 18, 2), W.EBODY),
        (fix_len(put[:H + 59]), W.EBODY),
        (fix_len(W.enc_put(1, bytes(16), 1, b"k" * 512, 1, bytes(32)) +
                 b"k")[:H + 18] + b"\x02\x01" +
         W.enc_put(1, bytes(16), 1, b"k" * 512, 1, bytes(32))[H + 20:] +
         b"k", W.EBODY),
        # lengths the type alone rules out, caught from the header
        (W.raw_frame(W.HELLO, 0, bytes(17)), W.EBODY),
        (W.raw_frame(W.PUT, 1, bytes(60)), W.EBODY),
        (W.raw_frame(W.PUT, 1, bytes(573)), W.EBODY),
        (W.raw_frame(W.RESULT, 1, bytes(2 + 255 * 605 + 1)), W.EBODY),
        (W.raw_frame(W.CREDIT, 1, bytes(8))[:W.HDR_LEN], W.EBODY),
        # DATA, END
        (W.raw_frame(W.DATA, 1, b""), W.EBODY),
        (W.raw_frame(W.DATA, 1, bytes(W.MAX_DATA + 1)), W.EBODY),
        (W.raw_frame(W.END, 1, b"x"), W.EBODY),
        # ABORT, GOAWAY
        (W.raw_frame(W.ABORT, 1, b"\x00\x01\x00"), W.EBODY),
        (set_u16(abort, H + 2, 5), W.EBODY),
        (set_u16(abort, H + 2, 3), W.EBODY),
        (W.raw_frame(W.ABORT, 1, struct.pack(">HH", 1, 513) + b"a" * 513),
         W.EBODY),
        (W.raw_frame(W.GOAWAY, 0, struct.pack(">HH", 1, 2) + b"a"),
         W.EBODY),
        # CREDIT
        (W.raw_frame(W.CREDIT, 0, struct.pack(">I", 0)), W.EBODY),
        (W.raw_frame(W.CREDIT, 1, struct.pack(">I", 0x80000000)), W.EBODY),
        (W.raw_frame(W.CREDIT, 1, b"\x00\x00\x01"), W.EBODY),
        (W.raw_frame(W.CREDIT, 1, b"\x00\x00\x00\x01\x00"), W.EBODY),
        # PING
        (W.raw_frame(W.PING, 0, bytes(7)), W.EBODY),
        (W.raw_frame(W.PONG, 0, bytes(9)), W.EBODY),
        # RESULT
        (W.raw_frame(W.RESULT, 1, b""), W.EBODY),
        (W.raw_frame(W.RESULT, 1, b"\x00"), W.EBODY),
        (W.raw_frame(W.RESULT, 1, b"\x01\x00" + bytes(29 * 256)),
         W.EBODY),
        (set_u16(res, H, 3), W.EBODY),
        (set_u16(res, H, 1), W.EBODY),
        (fix_len(res + b"\x00"), W.EBODY),
        (fix_len(res[:-1]), W.EBODY),
        (set_u8(res, H + 2 + 2, 0), W.EBODY),
        (set_u8(res, H + 2 + 2, 65), W.EBODY),
        (set_u16(res, H + 2 + 27, 513), W.EBODY),
    ]
    return c


def test_decoder_matches_on_valid_frames(wirecheck):
    """Both decoders accept every valid frame with the same fields and
    consume exactly one frame; every proper prefix is 'read more'."""
    rng = random.Random(3)
    bufs = []
    for fr in valid_frames(rng):
        bufs.append(fr)
        bufs.append(fr + W.enc_end(1))          # only the first frame
        cuts = sorted(set([0, 1, 4, 5, 11, 12, len(fr) - 1] +
                          [rng.randrange(len(fr)) for _ in range(3)]))
        bufs += [fr[:k] for k in cuts if k < len(fr)]
    lines = ["decode %s" % hx(b) for b in bufs]
    expect = [py_describe(b) for b in bufs]
    assert sum(1 for e in expect if e.startswith("rc=-1")) > 50
    out = run_check(wirecheck, lines)
    bad = [(b[:40].hex(), e, o) for b, e, o in zip(bufs, expect, out)
           if e != o]
    assert not bad, "%d differ, first: %r" % (len(bad), bad[:3])


def test_decoder_matches_on_corrupt_frames(wirecheck):
    """Each single-field corruption gets the same error code from both
    decoders, and that code is the one the contract names."""
    rng = random.Random(4)
    cases = corruptions(rng)
    py = [py_describe(b) for b, _ in cases]
    mine = [(b[:24].hex(), want, got) for (b, want), got in zip(cases, py)
            if got != "rc=%d" % want]
    assert not mine, "relaywire disagrees with itself: %r" % mine
    out = run_check(wirecheck, ["decode %s" % hx(b) for b, _ in cases])
    bad = [(b[:24].hex(), W.ERR_NAMES.get(want), o)
           for (b, want), o in zip(cases, out) if o != "rc=%d" % want]
    assert not bad, "C decoder differs on %d of %d: %r" % (
        len(bad), len(cases), bad)


def test_decoder_matches_on_random_bytes(wirecheck):
    """Random buffers, and valid headers over random bodies, get the same
    verdict from both decoders (and never crash the C one)."""
    rng = random.Random(5)
    bufs = [rng.randbytes(rng.randrange(0, 40)) for _ in range(300)]
    for _ in range(600):
        t = rng.randrange(0, 12)
        stream = rng.choice([0, 1, 2, rng.randrange(2 ** 32)])
        body = rng.randbytes(rng.choice([0, 1, 2, 4, 8, 17, 20, 31, 60, 64,
                                         rng.randrange(200)]))
        if t == W.RESULT and body:
            body = b"\x00" + bytes([rng.randrange(3)]) + body
        bufs.append(W.raw_frame(t, stream, body))
    out = run_check(wirecheck, ["decode %s" % hx(b) for b in bufs])
    expect = [py_describe(b) for b in bufs]
    bad = [(b[:40].hex(), e, o) for b, e, o in zip(bufs, expect, out)
           if e != o]
    assert not bad, "%d of %d differ, first: %r" % (len(bad), len(bufs),
                                                   bad[:5])


def test_decode_hdr_matches(wirecheck):
    """wire_decode_hdr agrees with relaywire.decode_hdr on whole headers."""
    rng = random.Random(6)
    hdrs = [W.raw_frame(rng.randrange(0, 12), rng.choice([0, 1, 6]), b"",
                        flags=rng.choice([0, 0, 0, 1]),
                        length=rng.choice([0, 5, W.MAX_BODY,
                                           W.MAX_BODY + 1]))
            for _ in range(200)]
    expect = []
    for h in hdrs:
        try:
            r = W.decode_hdr(h)
            expect.append("rc=0 len=%d type=%d stream=%d" % r)
        except W.WireError as e:
            expect.append("rc=%d" % e.code)
    out = run_check(wirecheck, ["dechdr %s" % hx(h) for h in hdrs])
    bad = [(h.hex(), e, o) for h, e, o in zip(hdrs, expect, out) if e != o]
    assert not bad, "%d differ, first: %r" % (len(bad), bad[:5])


def test_python_roundtrip():
    """relaywire decodes what it encodes (no C needed)."""
    rng = random.Random(7)
    for fr in valid_frames(rng):
        n, f = W.decode(fr)
        assert n == len(fr)
        assert W.decode(fr[:-1]) is None
    payload = rng.randbytes(1000)
    fr = W.enc_put(1, bytes(16), 3, b"k", len(payload),
                   hashlib.sha256(payload).digest())
    f = W.decode(fr)[1]
    assert (f.key, f.size, f.hops) == (b"k", 1000, 3)
    assert f.sha256 == hashlib.sha256(payload).digest()
