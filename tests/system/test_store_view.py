"""What is in the store, and how much of it there may be (issue 15).

Behaviours proved:
- `relayctl show store [prefix]` lists the files a relay stored: each key
  (escaped as relayd escapes keys: a quote, a backslash, a control byte
  and a non-ASCII byte all come out printable), its size and SHA-256 equal
  to those of the bytes sent, and its time; a prefix lists only the keys
  that start with it; the human table shows the same; no payload is read
  back for it (the hash is the one kept at store time, and a file relayd
  did not store says "(not kept)");
- one answer lists at most 1000 files and says how many matched and that
  the list was truncated;
- `store_max_bytes` refuses, at admission on the storing hop, a PUT whose
  declared size would take the store over the limit: the client hears
  "store full" with the numbers, the refusal counts as a "limit" refusal,
  no file (or temp file) is left, and a PUT that fits is still stored; a
  relay before it in a chain reports the storing hop's reason;
- relayd_store_bytes is the sum of the sizes of the files on disk, counted
  again when relayd starts on a store that already has files.
"""

import hashlib
import json
import os
import time

from conftest import (ctl_json, put, relayctl, results_by_node,
                      store_key_filename, wait_for)
from test_metrics import metrics_relay, scrape, value


def escaped(key):
    """util_escape() (src/util.h) of the UTF-8 bytes of key."""
    out = []
    for c in key.encode():
        if c == 0x5c:
            out.append("\\\\")
        elif c == 0x22:
            out.append('\\"')
        elif 0x20 <= c < 0x7f:
            out.append(chr(c))
        else:
            out.append("\\x%02x" % c)
    return "".join(out)


def disk_bytes(relay):
    return sum(os.path.getsize(os.path.join(relay.store_dir, n))
               for n in relay.store_files() if not n.startswith("."))


ODD_KEY = 'v/odd "q"\\ \u00e9\x01'
PAYLOADS = {
    "v/a": os.urandom(5000),
    "v/b/c": b"",
    "v/b/d": b"d" * 333,
    ODD_KEY: os.urandom(77),
    "w/other": b"other",
}


def test_show_store_lists_what_was_stored(make_relay):
    r = make_relay("s", store=True)
    r.start()
    t0 = time.time()
    for key, data in PAYLOADS.items():
        rc, js = put(r, key, data)
        assert rc == 0 and js and js.get("ok"), "put %r: %d %r" % (
            key, rc, js)
    t1 = time.time()

    js = ctl_json(r, "show", "store")
    assert js["truncated"] is False and js["matched"] == len(PAYLOADS)
    got = {e["key"]: e for e in js["entries"]}
    assert sorted(got) == sorted(escaped(k) for k in PAYLOADS)
    assert [e["key"] for e in js["entries"]] == sorted(got)
    for key, data in PAYLOADS.items():
        e = got[escaped(key)]
        assert e["size"] == len(data), key
        assert e["sha256"] == hashlib.sha256(data).hexdigest(), key
        assert int(t0) - 1 <= e["mtime"] <= t1 + 1, (key, e, t0, t1)
    assert js["bytes"] == disk_bytes(r) == sum(map(len, PAYLOADS.values()))

    js = ctl_json(r, "show", "store", "v/b")
    assert [e["key"] for e in js["entries"]] == ["v/b/c", "v/b/d"]
    assert js["matched"] == 2
    js = ctl_json(r, "show", "store", "v/odd")
    assert [e["key"] for e in js["entries"]] == [escaped(ODD_KEY)]
    assert ctl_json(r, "show", "store", "none/")["entries"] == []

    text = relayctl(["show", "store", "v/"], socket_path=r.socket)
    assert text.returncode == 0, text.stderr
    assert hashlib.sha256(PAYLOADS["v/a"]).hexdigest() in text.stdout
    assert escaped(ODD_KEY) in text.stdout
    assert "w/other" not in text.stdout
    assert "4 files listed" in text.stdout
    # Other show words take no prefix.
    bad = relayctl(["show", "peers", "x"], socket_path=r.socket)
    assert bad.returncode == 2 and "prefix" in bad.stderr


def test_show_store_is_bounded_and_says_so(make_relay):
    """1005 files (put there by hand, so relayd kept no hash for them):
    one answer lists 1000, says 1005 matched and that it was cut."""
    r = make_relay("big", store=True)
    r.start()
    for i in range(1005):
        with open(os.path.join(r.store_dir, "t%04d" % i), "wb") as f:
            f.write(b"x")
    js = ctl_json(r, "show", "store", "t")
    assert len(js["entries"]) == 1000
    assert js["matched"] == 1005 and js["truncated"] is True
    assert js["entries"][0] == dict(js["entries"][0], key="t0000",
                                    size=1, sha256=None)
    text = relayctl(["show", "store", "t"], socket_path=r.socket)
    assert "1000 files listed of 1005 matching (list truncated)" in \
        text.stdout, text.stdout
    assert "(not kept)" in text.stdout


def test_store_max_bytes_refuses_at_admission(make_relay):
    down, dport = metrics_relay(make_relay, name="down", store=True,
                                store_max_bytes=10000)
    down.start()
    rc, js = put(down, "q/first", os.urandom(6000))
    assert rc == 0 and js["ok"], js
    s, _ = scrape(dport)
    assert value(s, "relayd_store_bytes") == disk_bytes(down) == 6000
    assert value(s, "relayd_store_max_bytes") == 10000

    rc, js = put(down, "q/second", os.urandom(5000))
    assert rc != 0, js
    text = json.dumps(js)
    assert "store full" in text and "store_max_bytes 10000" in text, text
    assert not os.path.exists(down.stored_path("q/second"))
    assert down.temp_files() == []
    s, _ = scrape(dport)
    assert value(s, "relayd_puts_refused_total", reason="limit") == 1
    assert value(s, "relayd_stores_total", result="failed") == 0
    assert value(s, "relayd_store_bytes") == disk_bytes(down) == 6000

    data = os.urandom(4000)         # exactly fills it
    rc, js = put(down, "q/third", data)
    assert rc == 0 and js["ok"], js
    s, _ = scrape(dport)
    assert value(s, "relayd_store_bytes") == disk_bytes(down) == 10000

    # Through a relay that only forwards: the storing hop's reason.
    up = make_relay("up", peers=[{"name": "down", "relay": down}],
                    routes=[{"prefix": "", "hops": ["down"],
                             "store": False}])
    up.start()
    rc, js = put(up, "q/fourth", b"z" * 10)
    assert rc != 0, js
    assert not os.path.exists(down.stored_path("q/fourth"))
    assert "store full" in results_by_node(js)["down"]["reason"], js


def test_store_bytes_counted_at_start(make_relay):
    """Files already in the store when relayd starts count in
    relayd_store_bytes and against store_max_bytes; a replaced file counts
    once, at its new size."""
    r, port = metrics_relay(make_relay, name="again", store=True,
                            store_max_bytes=3000)
    for name, size in (("old1", 1000), ("old2", 1500)):
        with open(os.path.join(r.store_dir if os.path.isdir(r.store_dir)
                               else _mk(r.store_dir), name), "wb") as f:
            f.write(b"o" * size)
    r.start()
    s, _ = scrape(port)
    assert value(s, "relayd_store_bytes") == 2500 == disk_bytes(r)
    rc, js = put(r, "new", b"n" * 600)
    assert rc != 0 and "store full" in json.dumps(js), js
    # Replacing old2 (1500) with 400 bytes: the file is counted in full
    # while it is written (2500 + 400 fits), then at its new size.
    rc, js = put(r, "old2", b"r" * 400)
    assert rc == 0 and js["ok"], js
    wait_for(lambda: value(scrape(port)[0], "relayd_store_bytes") == 1400,
             5, "relayd_store_bytes to drop to 1400")
    assert disk_bytes(r) == 1400
    assert os.path.basename(r.stored_path("old2")) == \
        store_key_filename("old2")


def _mk(d):
    os.makedirs(d, exist_ok=True)
    return d
