"""Running out of file descriptors pauses accepting; it does not spin.

Behaviour proved: with its descriptor limit lowered (prlimit) and the
control socket flooded with clients until accept() fails with EMFILE, the
relay logs the failure, pauses the listener for a second instead of
re-polling a socket that stays readable, and so uses little CPU while the
fds stay exhausted (a spinning loop burns a whole core and logs the error
millions of times); once the clients go away it answers relayctl again.
"""

import os
import resource
import socket
import time

from conftest import relayctl, wait_for

WINDOW = 2.0            # seconds of exhaustion observed
MAX_CPU = 0.5           # of WINDOW: a spinning loop uses ~all of it
MAX_WARNINGS = 20       # one per paused second, with a wide margin


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_control_accept_emfile_pauses(make_relay):
    r = make_relay("r0")
    r.start()
    pid = r.proc.pid
    nfds = len(os.listdir("/proc/%d/fd" % pid))
    limit = nfds + 6
    soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (limit, hard))
    clients = []
    try:
        for _ in range(limit + 10):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.setblocking(False)
            try:
                s.connect(r.socket)
            except (BlockingIOError, ConnectionRefusedError):
                s.close()
                break
            clients.append(s)
        wait_for(lambda: len(os.listdir("/proc/%d/fd" % pid)) >= limit,
                 10, "the relay at its descriptor limit")
        cpu0 = cpu_seconds(pid)
        t_end = time.monotonic() + WINDOW
        wait_for(lambda: time.monotonic() >= t_end, WINDOW + 5,
                 "the observation window")
        used = cpu_seconds(pid) - cpu0
        warnings = r.log_text().count("control: accept")
        assert r.alive()
        assert used < MAX_CPU * WINDOW, (
            "relay used %.2f s CPU in %.1f s of fd exhaustion" % (used,
                                                                  WINDOW))
        assert warnings >= 1, "accept's failure was not logged"
        assert warnings <= MAX_WARNINGS, (
            "%d accept warnings: the listener was not paused" % warnings)
    finally:
        for s in clients:
            s.close()
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (soft, hard))

    def answers():
        res = relayctl(["-s", r.socket, "status"], timeout=5)
        return res.returncode == 0

    wait_for(answers, 10, "relayctl status after the clients left")
