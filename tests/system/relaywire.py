"""An independent Python implementation of the relayd peer protocol.

Written from the byte layout in src/wire.h only (version 1), so that the
system tests can talk to relayd as a peer without sharing any of its code:
encoders and a decoder for every frame type, and PeerConn, a blocking
client connection that does the HELLO exchange, tracks credit windows and
reads frames with a deadline.

Every integer is unsigned big-endian.  A frame is a 12-byte header
(len u32, type u8, flags u8, reserved u16, stream u32) and `len` body bytes.
"""

import hashlib
import os
import select
import socket
import struct
import time

VERSION = 1
HDR_LEN = 12
MAX_DATA = 64 * 1024
MAX_BODY = 256 * 1024
MAX_NODE = 64
MAX_KEY = 512
MAX_TEXT = 512
MAX_ENTRIES = 255
PUT_ID_LEN = 16
SHA256_LEN = 32
MAGIC = b"RLYD"

HELLO, PUT, DATA, END, ABORT, RESULT, CREDIT, PING, PONG, GOAWAY = range(1, 11)
TYPE_NAMES = {
    HELLO: "HELLO", PUT: "PUT", DATA: "DATA", END: "END", ABORT: "ABORT",
    RESULT: "RESULT", CREDIT: "CREDIT", PING: "PING", PONG: "PONG",
    GOAWAY: "GOAWAY",
}

# enum wire_abort_code
ABORT_NONE = 0
ABORT_PROTOCOL = 1
ABORT_TOO_LARGE = 2
ABORT_UPSTREAM_LOST = 3
ABORT_TIMEOUT = 4
ABORT_LOOP = 5
ABORT_NO_ROUTE = 6
ABORT_LIMIT = 7
ABORT_SHUTDOWN = 8
ABORT_CANCELLED = 9
ABORT_INTERNAL = 10
ABORT_SIZE = 11

# enum wire_result_status
RES_STORED = 1
RES_FORWARDED = 2
RES_FAILED = 3
RES_NAMES = {RES_STORED: "stored", RES_FORWARDED: "forwarded",
             RES_FAILED: "failed"}

# enum wire_err
OK = 0
EAGAIN = -1
ETOOBIG = -2
ETYPE = -3
EHEADER = -4
ESTREAM = -5
EBODY = -6
EVERSION = -7

_HDR = struct.Struct(">IBBHI")
_HELLO = struct.Struct(">4sHHIIB")          # 17 bytes, node follows
_PUT = struct.Struct(">16sBBHQ32s")         # 60 bytes, key follows
_TEXT = struct.Struct(">HH")                # 4 bytes, msg follows
_ENTRY = struct.Struct(">BBBQQQH")          # 29 bytes, node+reason follow
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")

# Frame types that must use stream 0, and those that must not.
_STREAM0 = (HELLO, PING, PONG, GOAWAY)
_STREAMN = (PUT, DATA, END, ABORT, RESULT)

# Credit windows, like CREDIT increments, stay below 2^31.
MAX_WINDOW = 0x7FFFFFFF

# Body length bounds that follow from each type's layout; a header whose
# len is outside them is refused (EBODY) before the body is read.
_ENTRY_MAX = 29 + MAX_NODE + MAX_TEXT
BODY_BOUNDS = {
    HELLO: (17 + 1, 17 + MAX_NODE),
    PUT: (60 + 1, 60 + MAX_KEY),
    DATA: (1, MAX_DATA),
    END: (0, 0),
    ABORT: (4, 4 + MAX_TEXT),
    RESULT: (2, 2 + MAX_ENTRIES * _ENTRY_MAX),
    CREDIT: (4, 4),
    PING: (8, 8),
    PONG: (8, 8),
    GOAWAY: (4, 4 + MAX_TEXT),
}


class WireError(Exception):
    """A frame that does not decode; .code is an enum wire_err value."""

    def __init__(self, code, what):
        super().__init__("%s: %s" % (ERR_NAMES.get(code, code), what))
        self.code = code


ERR_NAMES = {
    EAGAIN: "EAGAIN", ETOOBIG: "ETOOBIG", ETYPE: "ETYPE",
    EHEADER: "EHEADER", ESTREAM: "ESTREAM", EBODY: "EBODY",
    EVERSION: "EVERSION",
}


class Entry:
    """One RESULT entry: the outcome at one hop."""

    __slots__ = ("status", "depth", "node", "bytes", "first_us", "last_us",
                 "reason")

    def __init__(self, status, depth, node, nbytes=0, first_us=0,
                 last_us=0, reason=b""):
        self.status = status
        self.depth = depth
        self.node = _b(node)
        self.bytes = nbytes
        self.first_us = first_us
        self.last_us = last_us
        self.reason = _b(reason)

    @property
    def status_name(self):
        return RES_NAMES.get(self.status, str(self.status))

    def __eq__(self, other):
        return isinstance(other, Entry) and all(
            getattr(self, k) == getattr(other, k) for k in self.__slots__)

    def __repr__(self):
        return ("Entry(%s depth=%d node=%r bytes=%d first=%d last=%d "
                "reason=%r)" % (self.status_name, self.depth, self.node,
                                self.bytes, self.first_us, self.last_us,
                                self.reason))


class Frame:
    """A decoded frame.  Fields present depend on the type:

    HELLO: version, conn_window, stream_window, node
    PUT: put_id, hops, key, size, sha256
    DATA: data (the body)
    ABORT, GOAWAY: code, msg
    RESULT: entries (list of Entry)
    CREDIT: increment
    PING, PONG: opaque
    """

    def __init__(self, ftype, stream, body):
        self.type = ftype
        self.stream = stream
        self.body = body
        self.len = len(body)

    @property
    def type_name(self):
        return TYPE_NAMES.get(self.type, "type%d" % self.type)

    def __repr__(self):
        extra = {k: v for k, v in self.__dict__.items()
                 if k not in ("type", "stream", "body", "len")}
        if "data" in extra:
            extra["data"] = "<%d bytes>" % len(extra["data"])
        return "Frame(%s stream=%d len=%d %r)" % (
            self.type_name, self.stream, self.len, extra)


def _b(s):
    if isinstance(s, str):
        return s.encode()
    return bytes(s)


# ---------------------------------------------------------------- encoders

def raw_frame(ftype, stream, body=b"", flags=0, reserved=0, length=None):
    """Any frame, valid or not: no checks.  For crafting bad input."""
    if length is None:
        length = len(body)
    return _HDR.pack(length, ftype, flags, reserved, stream) + bytes(body)


def hdr(length, ftype, stream):
    """wire_put_hdr(): the 12-byte header."""
    return _HDR.pack(length, ftype, 0, 0, stream)


def _check(cond, what):
    if not cond:
        raise ValueError(what)


def _u32(v):
    return 0 <= v <= 0xFFFFFFFF


def enc_hello(node, conn_window, stream_window, version=VERSION):
    node = _b(node)
    _check(1 <= len(node) <= MAX_NODE, "node length")
    _check(0 <= conn_window <= MAX_WINDOW, "conn_window")
    _check(0 <= stream_window <= MAX_WINDOW, "stream_window")
    _check(0 <= version <= 0xFFFF, "version")
    body = _HELLO.pack(MAGIC, version, 0, conn_window, stream_window,
                       len(node)) + node
    return hdr(len(body), HELLO, 0) + body


def enc_put(stream, put_id, hops, key, size, sha256):
    key = _b(key)
    _check(stream != 0 and _u32(stream), "stream")
    _check(len(put_id) == PUT_ID_LEN, "put_id length")
    _check(0 <= hops <= 255, "hops")
    _check(1 <= len(key) <= MAX_KEY, "key length")
    _check(0 <= size <= 0xFFFFFFFFFFFFFFFF, "size")
    _check(len(sha256) == SHA256_LEN, "sha256 length")
    body = _PUT.pack(bytes(put_id), hops, 0, len(key), size,
                     bytes(sha256)) + key
    return hdr(len(body), PUT, stream) + body


def enc_data_hdr(stream, length):
    _check(stream != 0 and _u32(stream), "stream")
    _check(1 <= length <= MAX_DATA, "data length")
    return hdr(length, DATA, stream)


def enc_data(stream, data):
    return enc_data_hdr(stream, len(data)) + bytes(data)


def enc_end(stream):
    _check(stream != 0 and _u32(stream), "stream")
    return hdr(0, END, stream)


def _text_body(code, msg):
    msg = _b(msg)
    _check(0 <= code <= 0xFFFF, "code")
    _check(len(msg) <= MAX_TEXT, "msg length")
    return _TEXT.pack(code, len(msg)) + msg


def enc_abort(stream, code, msg=b""):
    _check(stream != 0 and _u32(stream), "stream")
    body = _text_body(code, msg)
    return hdr(len(body), ABORT, stream) + body


def enc_goaway(code, msg=b""):
    body = _text_body(code, msg)
    return hdr(len(body), GOAWAY, 0) + body


def enc_credit(stream, increment):
    _check(_u32(stream), "stream")
    _check(1 <= increment <= 0x7FFFFFFF, "increment")
    return hdr(4, CREDIT, stream) + _U32.pack(increment)


def enc_ping(opaque, pong=False):
    _check(0 <= opaque <= 0xFFFFFFFFFFFFFFFF, "opaque")
    return hdr(8, PONG if pong else PING, 0) + _U64.pack(opaque)


def enc_result(stream, entries):
    _check(stream != 0 and _u32(stream), "stream")
    _check(len(entries) <= MAX_ENTRIES, "entry count")
    parts = [_U16.pack(len(entries))]
    for e in entries:
        _check(1 <= len(e.node) <= MAX_NODE, "node length")
        _check(len(e.reason) <= MAX_TEXT, "reason length")
        _check(0 <= e.status <= 255 and 0 <= e.depth <= 255, "status/depth")
        parts.append(_ENTRY.pack(e.status, e.depth, len(e.node), e.bytes,
                                 e.first_us, e.last_us, len(e.reason)))
        parts.append(e.node)
        parts.append(e.reason)
    body = b"".join(parts)
    _check(len(body) <= MAX_BODY, "body length")
    return hdr(len(body), RESULT, stream) + body


# ----------------------------------------------------------------- decoder

def decode_hdr(buf):
    """Check what header fields buf holds.  Returns (len, type, stream)
    for a whole header, or None if fewer than HDR_LEN bytes are there
    (after checking the fields that are there).  Raises WireError."""
    n = len(buf)
    if n >= 4:
        length = _U32.unpack_from(buf, 0)[0]
        if length > MAX_BODY:
            raise WireError(ETOOBIG, "len %d" % length)
    if n >= 5 and buf[4] not in TYPE_NAMES:
        raise WireError(ETYPE, "type %d" % buf[4])
    if n >= 6 and buf[5] != 0:
        raise WireError(EHEADER, "flags %d" % buf[5])
    if n >= 7 and buf[6] != 0 or n >= 8 and buf[7] != 0:
        raise WireError(EHEADER, "reserved bits")
    if n < HDR_LEN:
        return None
    length, ftype, _, _, stream = _HDR.unpack_from(buf, 0)
    if ftype in _STREAM0 and stream != 0:
        raise WireError(ESTREAM, "%s on stream %d" % (TYPE_NAMES[ftype],
                                                     stream))
    if ftype in _STREAMN and stream == 0:
        raise WireError(ESTREAM, "%s on stream 0" % TYPE_NAMES[ftype])
    lo, hi = BODY_BOUNDS[ftype]
    if not lo <= length <= hi:
        raise WireError(EBODY, "%s with len %d" % (TYPE_NAMES[ftype], length))
    return length, ftype, stream


def _body_err(cond, what):
    if not cond:
        raise WireError(EBODY, what)


def _dec_hello(f, b):
    _body_err(len(b) >= _HELLO.size, "HELLO too short")
    magic, ver, rsv, cw, sw, nl = _HELLO.unpack_from(b, 0)
    if magic != MAGIC or ver != VERSION:
        raise WireError(EVERSION, "magic %r version %d" % (magic, ver))
    if rsv != 0:
        raise WireError(EHEADER, "HELLO reserved bits")
    _body_err(cw <= MAX_WINDOW and sw <= MAX_WINDOW, "window above 2^31-1")
    _body_err(1 <= nl <= MAX_NODE, "node_len %d" % nl)
    _body_err(len(b) == _HELLO.size + nl, "HELLO length")
    node = b[_HELLO.size:]
    _body_err(all(0x21 <= c <= 0x7e for c in node), "node not printable")
    f.version, f.conn_window, f.stream_window, f.node = ver, cw, sw, node


def _dec_put(f, b):
    _body_err(len(b) >= _PUT.size, "PUT too short")
    pid, hops, flags, kl, size, sha = _PUT.unpack_from(b, 0)
    if flags != 0:
        raise WireError(EHEADER, "PUT flags")
    _body_err(1 <= kl <= MAX_KEY, "key_len %d" % kl)
    _body_err(len(b) == _PUT.size + kl, "PUT length")
    f.put_id, f.hops, f.size, f.sha256 = pid, hops, size, sha
    f.key = b[_PUT.size:]


def _dec_text(f, b):
    _body_err(len(b) >= _TEXT.size, "text too short")
    code, ml = _TEXT.unpack_from(b, 0)
    _body_err(ml <= MAX_TEXT, "msg_len %d" % ml)
    _body_err(len(b) == _TEXT.size + ml, "text length")
    f.code, f.msg = code, b[_TEXT.size:]


def _dec_result(f, b):
    _body_err(len(b) >= 2, "RESULT too short")
    count = _U16.unpack_from(b, 0)[0]
    _body_err(count <= MAX_ENTRIES, "count %d" % count)
    off, entries = 2, []
    for _ in range(count):
        _body_err(len(b) - off >= _ENTRY.size, "entry too short")
        st, depth, nl, nb, fu, lu, rl = _ENTRY.unpack_from(b, off)
        off += _ENTRY.size
        _body_err(1 <= nl <= MAX_NODE, "entry node_len %d" % nl)
        _body_err(rl <= MAX_TEXT, "entry reason_len %d" % rl)
        _body_err(len(b) - off >= nl + rl, "entry text short")
        node = b[off:off + nl]
        _body_err(all(0x21 <= c <= 0x7e for c in node),
                  "entry node not printable")
        reason = b[off + nl:off + nl + rl]
        off += nl + rl
        entries.append(Entry(st, depth, node, nb, fu, lu, reason))
    _body_err(off == len(b), "RESULT trailing bytes")
    f.entries = entries


def _dec_body(f):
    b, t = f.body, f.type
    if t == HELLO:
        _dec_hello(f, b)
    elif t == PUT:
        _dec_put(f, b)
    elif t == DATA:
        _body_err(1 <= len(b) <= MAX_DATA, "DATA length %d" % len(b))
        f.data = b
    elif t == END:
        _body_err(len(b) == 0, "END with a body")
    elif t in (ABORT, GOAWAY):
        _dec_text(f, b)
    elif t == RESULT:
        _dec_result(f, b)
    elif t == CREDIT:
        _body_err(len(b) == 4, "CREDIT length")
        inc = _U32.unpack(b)[0]
        _body_err(1 <= inc <= 0x7FFFFFFF, "CREDIT increment %d" % inc)
        f.increment = inc
    elif t in (PING, PONG):
        _body_err(len(b) == 8, "PING length")
        f.opaque = _U64.unpack(b)[0]


def decode(buf):
    """Decode one frame from the start of buf.  Returns (consumed, Frame),
    or None if buf holds no whole frame yet.  Raises WireError."""
    buf = memoryview(buf)
    h = decode_hdr(buf)
    if h is None:
        return None
    length, ftype, stream = h
    if len(buf) < HDR_LEN + length:
        return None
    f = Frame(ftype, stream, bytes(buf[HDR_LEN:HDR_LEN + length]))
    _dec_body(f)
    return HDR_LEN + length, f


def decode_all(buf):
    """All whole frames in buf, and the bytes left over."""
    frames, off = [], 0
    while True:
        r = decode(buf[off:])
        if r is None:
            return frames, bytes(buf[off:])
        off += r[0]
        frames.append(r[1])


# ------------------------------------------------------------- connection

class PeerClosed(Exception):
    """The other side closed the connection (EOF or reset)."""


class PeerTimeout(Exception):
    """Nothing matching arrived before the deadline."""


class _Stream:
    def __init__(self, sid, credit):
        self.id = sid
        self.credit = credit      # DATA bytes we may still send
        self.sent = 0


class PeerConn:
    """A blocking peer connection to relayd, as the connecting side.

    It uses odd stream ids (1, 3, 5, ...).  connect() sends HELLO first and
    then reads the other side's HELLO; windows granted by the other side
    bound what send_data() sends, and CREDIT frames extend them.  Frames
    that arrive while waiting for credit are kept and returned later by
    read_frame().  PINGs are answered with PONG automatically; CREDIT
    frames are applied and also returned by read_frame().
    """

    def __init__(self, host, port, node="pyclient", conn_window=4 << 20,
                 stream_window=1 << 20, timeout=10.0):
        self.addr = (host, port)
        self.node = node
        self.my_conn_window = conn_window
        self.my_stream_window = stream_window
        self.timeout = timeout
        self.sock = None
        self.rbuf = bytearray()
        self.backlog = []
        self.closed = False
        self.peer_hello = None
        self.conn_credit = 0
        self.streams = {}
        self.next_id = 1
        self.frames_seen = []

    # -- setup and teardown

    def open_socket(self):
        """TCP connect only (for tests that send raw bytes)."""
        self.sock = socket.create_connection(self.addr, timeout=self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self

    def connect(self, version=VERSION):
        """Connect, send HELLO, read the peer's HELLO."""
        self.open_socket()
        self.send_raw(enc_hello(self.node, self.my_conn_window,
                                self.my_stream_window, version=version))
        f = self.read_frame(deadline=time.monotonic() + self.timeout)
        if f.type != HELLO:
            raise WireError(EBODY, "expected HELLO, got %r" % f)
        self.peer_hello = f
        self.conn_credit = f.conn_window
        return self

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None

    def shutdown_write(self):
        self.sock.shutdown(socket.SHUT_WR)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- raw I/O

    def send_raw(self, data):
        self.sock.sendall(data)

    def _fill(self, deadline):
        """Read more bytes; False on timeout.  Raises PeerClosed."""
        if self.closed:
            raise PeerClosed("connection closed")
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        # A TLS socket may hold decrypted bytes select() cannot see.
        pending = getattr(self.sock, "pending", None)
        if not (pending and pending() > 0):
            r, _, _ = select.select([self.sock], [], [], left)
            if not r:
                return False
        try:
            chunk = self.sock.recv(1 << 20)
        except (ConnectionResetError, ConnectionAbortedError) as e:
            self.closed = True
            raise PeerClosed(str(e))
        if not chunk:
            self.closed = True
            raise PeerClosed("EOF")
        self.rbuf += chunk
        return True

    def _next_from_socket(self, deadline):
        while True:
            r = decode(self.rbuf)
            if r is not None:
                n, f = r
                del self.rbuf[:n]
                self._apply(f)
                return f
            if not self._fill(deadline):
                return None

    def _apply(self, f):
        self.frames_seen.append(f)
        if f.type == CREDIT:
            if f.stream == 0:
                self.conn_credit += f.increment
            elif f.stream in self.streams:
                self.streams[f.stream].credit += f.increment
        elif f.type == PING:
            self.send_raw(enc_ping(f.opaque, pong=True))
        elif f.type == DATA:
            # We never open streams towards us, but keep the windows open.
            self.send_raw(enc_credit(0, len(f.data)))

    def read_frame(self, deadline=None):
        """The next frame (backlog first).  Raises PeerTimeout at the
        deadline, PeerClosed on EOF."""
        if self.backlog:
            return self.backlog.pop(0)
        if deadline is None:
            deadline = time.monotonic() + self.timeout
        f = self._next_from_socket(deadline)
        if f is None:
            raise PeerTimeout("no frame before the deadline")
        return f

    def expect(self, pred, deadline=None, what="frame"):
        """Read frames until pred(frame); others are dropped.  Returns the
        matching frame."""
        if deadline is None:
            deadline = time.monotonic() + self.timeout
        while True:
            try:
                f = self.read_frame(deadline)
            except PeerTimeout:
                raise PeerTimeout("no %s before the deadline" % what)
            if pred(f):
                return f

    def expect_stream_end(self, sid, deadline=None):
        """The RESULT or ABORT that ends stream sid; other frames are kept
        for later read_frame() calls."""
        if deadline is None:
            deadline = time.monotonic() + self.timeout
        for i, f in enumerate(self.backlog):
            if f.stream == sid and f.type in (RESULT, ABORT):
                return self.backlog.pop(i)
        while True:
            f = self._next_from_socket(deadline)
            if f is None:
                raise PeerTimeout("stream %d did not end" % sid)
            if f.stream == sid and f.type in (RESULT, ABORT):
                return f
            if f.type not in (CREDIT, PING, PONG):
                self.backlog.append(f)

    # -- streams

    def open_stream(self, key, size, sha256, put_id=None, hops=16):
        """Send PUT on a new odd stream id; returns the id."""
        sid = self.next_id
        self.next_id += 2
        if put_id is None:
            put_id = os.urandom(PUT_ID_LEN)
        self.streams[sid] = _Stream(sid, self.peer_hello.stream_window)
        self.send_raw(enc_put(sid, put_id, hops, key, size, sha256))
        return sid

    def put(self, key, payload, put_id=None, hops=16):
        """Open a stream for payload (key, size and sha256 from it)."""
        return self.open_stream(key, len(payload),
                                hashlib.sha256(payload).digest(),
                                put_id=put_id, hops=hops)

    def credit_for(self, sid):
        return min(self.conn_credit, self.streams[sid].credit)

    def send_some(self, sid, data, limit=None):
        """Send as much of data as credit allows now (at most limit bytes),
        without waiting.  Returns the number of bytes sent."""
        st = self.streams[sid]
        sent = 0
        want = len(data) if limit is None else min(limit, len(data))
        while sent < want:
            n = min(want - sent, MAX_DATA, self.conn_credit, st.credit)
            if n <= 0:
                break
            self.send_raw(enc_data_hdr(sid, n) +
                          bytes(data[sent:sent + n]))
            self.conn_credit -= n
            st.credit -= n
            st.sent += n
            sent += n
        return sent

    def wait_credit(self, deadline):
        """Read one frame (blocking until the deadline) so CREDIT frames
        get applied; non-credit frames go to the backlog."""
        f = self._next_from_socket(deadline)
        if f is None:
            raise PeerTimeout("no credit before the deadline")
        if f.type not in (CREDIT, PING, PONG):
            self.backlog.append(f)

    def send_data(self, sid, data, deadline=None):
        """Send all of data on stream sid, waiting for credit as needed."""
        if deadline is None:
            deadline = time.monotonic() + self.timeout
        data = memoryview(data)
        off = 0
        while off < len(data):
            n = self.send_some(sid, data[off:])
            off += n
            if off < len(data) and n == 0:
                self.wait_credit(deadline)

    def send_end(self, sid):
        self.send_raw(enc_end(sid))

    def send_abort(self, sid, code=ABORT_CANCELLED, msg=b"test"):
        self.send_raw(enc_abort(sid, code, msg))

    def ping(self, opaque=0x0123456789ABCDEF, deadline=None):
        """Send PING and wait for the matching PONG; other frames are kept."""
        if deadline is None:
            deadline = time.monotonic() + self.timeout
        self.send_raw(enc_ping(opaque))
        while True:
            f = self._next_from_socket(deadline)
            if f is None:
                raise PeerTimeout("no PONG before the deadline")
            if f.type == PONG and f.opaque == opaque:
                return f
            if f.type not in (CREDIT, PING):
                self.backlog.append(f)
