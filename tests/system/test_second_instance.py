"""A second relayd never takes the control socket of a running one.

Behaviour proved: with relay A running, a second relayd whose config names
A's control_socket exits non-zero within a few seconds, before binding or
opening anything (its own listen port stays free, its store_dir is not
made), and says that another relayd answers on that socket; A's socket is
the same file as before and A still answers `relayctl status`.  A socket
file left by a relayd killed with SIGKILL is stale (nobody accepts on it):
the next start removes it, says so, and answers on it.
"""

import os
import socket
import subprocess
import time

from conftest import HOST, RELAYD, register, require_binaries, wait_for

EXIT_WITHIN = 10.0


def test_second_instance_refused(make_relay):
    a = make_relay("first").start()
    before = os.stat(a.socket)
    b = make_relay("second")
    b.socket = a.socket
    b.store_dir = os.path.join(b.dir, "store-never")
    conf = b.write_config()
    require_binaries(RELAYD)
    proc = register(subprocess.Popen(
        [RELAYD, "-d", "-f", conf], stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    try:
        out, _ = proc.communicate(timeout=EXIT_WITHIN)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate(timeout=10)
        raise AssertionError("the second relayd kept running:\n" + out)
    assert proc.returncode != 0, out
    assert "another relayd answers on %s" % a.socket in out, out
    after = os.stat(a.socket)
    assert (after.st_ino, after.st_dev) == (before.st_ino, before.st_dev), \
        "the control socket file was replaced"
    assert not os.path.exists(b.store_dir), "the second relayd made its store"
    s = socket.socket()
    try:
        s.bind((HOST, b.port))          # its listen port was never bound
    finally:
        s.close()
    assert a.status()["node"] == "first"


def test_stale_socket_removed(make_relay):
    a = make_relay("crashed").start()
    a.kill9()
    assert os.path.exists(a.socket), "no socket file left to be stale"
    offset = a.log_size()
    start = time.monotonic()
    a.start()
    assert a.status()["node"] == "crashed"
    wait_for(lambda: "removed stale socket %s" % a.socket in
             a.log_since(offset), 5, "the log to say the stale socket went")
    assert time.monotonic() - start < EXIT_WITHIN
