"""relayd -n checks a config: 0 for a good one, "FILE:LINE:" and 1 for a bad one.

Behaviour proved: `relayd -n -f FILE` accepts the shipped conf/relayd.conf
and every conf/examples/*.conf, and the configs the system-test fixtures
generate (so the fixtures speak the config.h syntax); it exits 0 without
starting a daemon or creating its control socket.  For a config with one
mistake (syntax error, unknown setting, out-of-range value, 64-bit integer
without L, unknown peer in a route, bad mode, over-long node_id, missing
node_id) it exits 1 and names the file and line of the mistake.
"""

import glob
import os
import subprocess

import pytest

from conftest import RELAYD, REPO, HOST, Relay, require_binaries


def check(path):
    require_binaries(RELAYD)
    return subprocess.run([RELAYD, "-n", "-f", path], capture_output=True,
                          text=True, timeout=20, stdin=subprocess.DEVNULL)


SHIPPED = [os.path.join(REPO, "conf", "relayd.conf")] + sorted(
    glob.glob(os.path.join(REPO, "conf", "examples", "*.conf")))


@pytest.mark.parametrize("path", SHIPPED,
                         ids=[os.path.relpath(p, REPO) for p in SHIPPED])
def test_shipped_config_is_accepted(path):
    assert os.path.exists(path), "%s is missing" % path
    r = check(path)
    assert r.returncode == 0, "exit %d:\n%s%s" % (r.returncode, r.stdout,
                                                  r.stderr)


def test_generated_configs_are_accepted(tmp_path):
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
    for relay in (a, b):
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
'''

# (name, text, line of the mistake)
BAD = [
    ("syntax", GOOD_HEAD + "max_payload = ;\n", 5),
    ("unknown_setting", GOOD_HEAD + "frobnicate = 1;\n", 5),
    ("inactivity_too_small",
     GOOD_HEAD + "idle_timeout = 60.0;\nstream_inactivity_timeout = 0.05;\n",
     6),
    ("int64_without_L", GOOD_HEAD + "max_payload = 5000000000;\n", 5),
    ("unknown_peer",
     GOOD_HEAD + 'peers = (\n  { name = "p1"; address = "127.0.0.1:7401"; }'
     '\n);\nroutes = (\n  { prefix = "";\n    hops = [ "nosuch" ];\n'
     '    store = false; }\n);\n', 10),
    ("bad_mode",
     GOOD_HEAD + 'peers = ( );\nroutes = (\n  { prefix = "";\n'
     '    mode = "roundrobin";\n    store = true; }\n);\n', 8),
    ("node_id_too_long",
     'listen = "127.0.0.1:7400";\nnode_id = "%s";\n' % ("n" * 65), 2),
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
