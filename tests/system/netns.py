"""Relays as if on separate machines: one Linux network namespace per relay.

NsChain(root, n) builds namespaces r0..rn (names "rfx-<pid>-<rand>-rI"),
connects rI and rI+1 with a veth pair (device "dnl" in rI, 10.77.I.1/30;
device "upl" in rI+1, 10.77.I.2/30) and makes one NsRelay per namespace:
rI listens on 10.77.I-1.2:7400 (r0, which only talks to relayctl, on
127.0.0.1:7400), peers with rI+1 at 10.77.I.2:7400 and routes every key
to it.  relayd runs inside its namespace; relayctl reaches it over the
Unix control socket in the relay's directory, from the root namespace.

Faults are applied per link (iptables in both namespaces of the link, tbf
on the sending side) and healed with heal(); destroy() stops the relays
and deletes the namespaces.  cleanup_leftovers() deletes namespaces and
tmpfs mounts with this module's prefix whose owning pytest process is
gone (the PID is part of every name, so a concurrent session is never
touched).

Needs root, iproute2 (ip netns, veth, tc tbf), iptables and mount.
"""

import os
import re
import shutil
import signal
import subprocess
import time

import pytest

import conftest
from conftest import RELAYD, Relay, register, require_binaries, wait_for

PREFIX = "rfx"
PORT = 7400
TMPFS_PREFIX = "rfxstore"
CMD_TIMEOUT = 10
_NAME_RX = re.compile(r"^%s-(\d+)-[0-9a-f]+-r\d+$" % PREFIX)
_TMPFS_RX = re.compile(r"^%s-(\d+)$" % TMPFS_PREFIX)


def run(cmd, check=True):
    """Run a command (list) with a deadline; returns CompletedProcess."""
    r = subprocess.run(cmd, capture_output=True, text=True,
                       timeout=CMD_TIMEOUT, stdin=subprocess.DEVNULL)
    if check and r.returncode != 0:
        raise RuntimeError("%s: exit %d: %s%s" % (" ".join(cmd),
                                                   r.returncode, r.stdout,
                                                   r.stderr))
    return r


def missing_tools():
    """The tools this module needs that are not installed, or a reason
    they cannot be used (not root)."""
    out = [t for t in ("ip", "tc", "iptables", "ss", "mount", "umount")
           if shutil.which(t) is None]
    if os.geteuid() != 0:
        out.append("root")
    return out


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def list_netns():
    r = run(["ip", "netns", "list"], check=False)
    return [ln.split()[0] for ln in r.stdout.splitlines() if ln.strip()]


def _kill_ns_pids(ns):
    """SIGKILL the processes left in a leftover namespace of ours, by
    PID (they can only be relays an earlier, dead session started)."""
    r = run(["ip", "netns", "pids", ns], check=False)
    for tok in r.stdout.split():
        try:
            os.kill(int(tok), signal.SIGKILL)
        except (ValueError, ProcessLookupError):
            pass


def cleanup_leftovers():
    """Delete namespaces and tmpfs mounts of ours left by a session that
    is gone.  Returns what was removed."""
    removed = []
    with open("/proc/mounts") as f:
        mounts = [ln.split() for ln in f]
    for m in mounts:
        mm = _TMPFS_RX.match(m[0])
        if m[2] == "tmpfs" and mm and not _pid_alive(int(mm.group(1))):
            run(["umount", "-l", m[1]], check=False)
            removed.append("tmpfs " + m[1])
    for ns in list_netns():
        mm = _NAME_RX.match(ns)
        if mm and not _pid_alive(int(mm.group(1))):
            _kill_ns_pids(ns)
            run(["ip", "netns", "del", ns], check=False)
            removed.append("netns " + ns)
    return removed


def mount_tmpfs(path, size):
    """A tmpfs of size bytes on path, named after this process."""
    run(["mount", "-t", "tmpfs", "-o", "size=%d,mode=0750" % size,
         "%s-%d" % (TMPFS_PREFIX, os.getpid()), path])


def umount(path):
    run(["umount", path], check=False)




class NsRelay(Relay):
    """A Relay whose relayd runs inside network namespace ns."""

    def __init__(self, name, root, ns, listen_host, **kw):
        self.ns = ns
        self.listen_host = listen_host
        super().__init__(name, root, port=PORT, **kw)
        self.pid = None
        self.tmpfs = None

    @property
    def address(self):
        return "%s:%d" % (self.listen_host, self.port)

    def start(self, wait=True):
        """Start relayd in its namespace: `ip netns exec` execs sh, which
        execs relayd, so the Popen PID is relayd's own."""
        require_binaries()
        self.write_config()
        self._log = open(self.log_path, "ab")
        self.stop_rc = None
        self.killed = False
        self.proc = register(subprocess.Popen(
            ["ip", "netns", "exec", self.ns, "sh", "-c",
             'exec "$0" -d -f "$1"', RELAYD, self.conf_path],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log,
            cwd=self.dir, start_new_session=True))
        self.pid = self.proc.pid
        if self not in conftest._RELAYS:
            conftest._RELAYS.append(self)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=conftest.START_TIMEOUT):
        super().wait_ready(timeout)
        exe = os.readlink("/proc/%d/exe" % self.pid)
        assert os.path.realpath(exe) == os.path.realpath(RELAYD), (
            "%s: PID %d is %s, not relayd" % (self.name, self.pid, exe))

    def term(self):
        """SIGTERM (a clean shutdown); returns the exit status."""
        return self.stop()

    def restart(self):
        if self.alive():
            self.stop()
        if self._log:
            self._log.close()
            self._log = None
        return self.start()

    def fds(self):
        return conftest.nfds(self.pid)

    def rss_kib(self):
        return conftest.proc_value(self.pid, "status", "VmRSS:")


class NsChain:
    """Namespaces r0..rn in a chain; see the module docstring."""

    def __init__(self, root, n=3, store=(3,), opts=None, hop_opts=None):
        self.tag = "%s-%d-%s" % (PREFIX, os.getpid(), os.urandom(3).hex())
        self.n = n
        self.ns = ["%s-r%d" % (self.tag, i) for i in range(n + 1)]
        self.created = []
        self.mounts = []
        self.relays = []
        hop_opts = hop_opts or {}
        for i in range(n + 1):
            peers, hops = [], []
            if i < n:
                peers.append({"name": "r%d" % (i + 1),
                              "address": "10.77.%d.2:%d" % (i, PORT)})
                hops.append("r%d" % (i + 1))
            listen = "127.0.0.1" if i == 0 else "10.77.%d.2" % (i - 1)
            kw = dict(opts or {})
            kw.update(hop_opts.get(i, {}))
            self.relays.append(NsRelay(
                "r%d" % i, root, self.ns[i], listen, peers=peers,
                routes=[{"prefix": "", "hops": hops, "mode": "fanout",
                         "store": i in store}], **kw))

    # -- topology

    def build(self):
        for ns in self.ns:
            run(["ip", "netns", "add", ns])
            self.created.append(ns)
            run(["ip", "-n", ns, "link", "set", "lo", "up"])
        for i in range(self.n):
            a, b = self.ns[i], self.ns[i + 1]
            run(["ip", "-n", a, "link", "add", "dnl", "type", "veth",
                 "peer", "name", "upl", "netns", b])
            run(["ip", "-n", a, "addr", "add", "10.77.%d.1/30" % i,
                 "dev", "dnl"])
            run(["ip", "-n", b, "addr", "add", "10.77.%d.2/30" % i,
                 "dev", "upl"])
            # One MTU-sized segment per packet, as on a wire between
            # machines (no 64 KiB GSO super-packets): a drop rule then
            # drops what a lossy link would.
            for ns, dev in ((a, "dnl"), (b, "upl")):
                run(["ip", "-n", ns, "link", "set", dev, "gso_max_segs",
                     "1", "up"])
        return self

    def start(self):
        for r in reversed(self.relays):
            r.start(wait=False)
        for r in reversed(self.relays):
            r.wait_ready()
        return self

    def destroy(self):
        """Stop the relays, unmount, delete the namespaces; wait until
        they are gone.  Safe to call twice and after a partial build."""
        errors = []
        for r in self.relays:
            try:
                if r.proc is not None:
                    r.stop()
            except Exception as e:      # keep tearing down
                errors.append("%s: %s" % (r.name, e))
        for m in self.mounts:
            umount(m)
        self.mounts = []
        for ns in self.created:
            run(["ip", "netns", "del", ns], check=False)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            left = set(self.created) & set(list_netns())
            if not left:
                break
            time.sleep(max(0.0, min(0.05, deadline - time.monotonic())))
        else:
            errors.append("namespaces not deleted: %r" % sorted(left))
        self.created = []
        return errors

    def tmpfs_store(self, i, size):
        """Mount a tmpfs of size bytes as relay i's store (before start)."""
        r = self.relays[i]
        mount_tmpfs(r.store_dir, size)
        self.mounts.append(r.store_dir)
        r.tmpfs = size

    # -- links and faults

    def link_ends(self, i):
        """((ns, dev) of rI, (ns, dev) of rI+1) for link I."""
        return (self.ns[i], "dnl"), (self.ns[i + 1], "upl")

    def iptables(self, ns, *args):
        return run(["ip", "netns", "exec", ns, "iptables", "-w", "5"] +
                   list(args))

    def link_rule(self, i, *rule):
        """Append rule (after "-A INPUT -i DEV") on both ends of link i,
        so it applies to each direction."""
        for ns, dev in self.link_ends(i):
            self.iptables(ns, "-A", "INPUT", "-i", dev, *rule)

    def reset_link(self, i):
        """Every TCP segment on link i is answered by a RST (RSTs
        themselves pass, so each side learns of the reset)."""
        self.link_rule(i, "-p", "tcp", "!", "--tcp-flags", "RST", "RST",
                       "-j", "REJECT", "--reject-with", "tcp-reset")

    def blackhole_link(self, i):
        self.link_rule(i, "-j", "DROP")

    def lossy_link(self, i, p):
        self.link_rule(i, "-m", "statistic", "--mode", "random",
                       "--probability", "%g" % p, "-j", "DROP")

    def count_flags(self, i):
        """Count the FIN and RST segments rI receives on link i from now
        on (rules that only count)."""
        ns, dev = self.link_ends(i)[0]
        for flag in ("FIN", "RST"):
            self.iptables(ns, "-I", "INPUT", "1", "-i", dev, "-p", "tcp",
                          "--tcp-flags", flag, flag, "-m", "comment",
                          "--comment", "count-" + flag)

    def flag_counts(self, i):
        """{"FIN": n, "RST": n} seen by rI on link i (count_flags)."""
        ns = self.link_ends(i)[0][0]
        out = self.iptables(ns, "-L", "INPUT", "-v", "-x", "-n").stdout
        got = {}
        for ln in out.splitlines():
            m = re.search(r"count-(FIN|RST)", ln)
            if m:
                got[m.group(1)] = int(ln.split()[0])
        return got

    def dropped(self, i):
        """Packets the DROP rules on link i dropped (both ends)."""
        n = 0
        for ns, _ in self.link_ends(i):
            out = self.iptables(ns, "-L", "INPUT", "-v", "-x", "-n").stdout
            for ln in out.splitlines():
                f = ln.split()
                if len(f) > 2 and f[2] == "DROP":
                    n += int(f[0])
        return n

    def rate_limit(self, i, rate, burst="64kb"):
        """tbf on rI's side of link i (the direction payload flows)."""
        ns, dev = self.link_ends(i)[0]
        run(["ip", "netns", "exec", ns, "tc", "qdisc", "replace", "dev",
             dev, "root", "tbf", "rate", rate, "burst", burst, "latency",
             "400ms"])

    def heal(self):
        """Remove every iptables rule and qdisc this module set."""
        for i in range(self.n):
            for ns, dev in self.link_ends(i):
                if ns not in self.created:
                    continue
                self.iptables(ns, "-F", "INPUT")
                run(["ip", "netns", "exec", ns, "tc", "qdisc", "del", "dev",
                     dev, "root"], check=False)

    # -- observation

    def _peer_lists(self):
        """Each relay's peers, from one status read per relay; None when
        a relay is down."""
        lists = []
        for r in self.relays:
            if not r.alive():
                return None
            lists.append(r.status().get("peers") or [])
        return lists

    def _chain_holds(self, lists, good):
        """True when good(i, peer) holds for every outbound peer of every
        relay i that dials (there must be one) and for some inbound peer
        of every relay but r0."""
        if lists is None:
            return False
        for i, peers in enumerate(lists):
            out = [good(i, p) for p in peers if p.get("direction") == "out"]
            inb = [good(i, p) for p in peers if p.get("direction") == "in"]
            if i < self.n and not (out and all(out)):
                return False
            if i > 0 and not any(inb):
                return False
        return True

    def links_up(self):
        """True when every relay's outbound link is up and every relay
        but r0 has its inbound link up."""
        return self._chain_holds(self._peer_lists(),
                                 lambda i, p: p.get("state") == "up")

    def wait_links_up(self, timeout=15):
        wait_for(self.links_up, timeout, "every link of the chain to be up",
                 interval=0.1)

    def link_marks(self):
        """What each live relay's up links had received, now: pass it to
        wait_links_live() once a fault is healed."""
        marks = {"t": time.monotonic()}
        for r in self.relays:
            if not r.alive():
                continue
            for p in r.status().get("peers") or []:
                if p.get("state") == "up":
                    marks[(r.name, p.get("direction"), p.get("name"))] = \
                        p.get("bytes_in", 0)
        return marks

    def links_live(self, marks):
        """links_up(), and every one of those links has carried bytes in
        since marks were taken, or was made since: a link that TCP is
        still backing off on after a blackhole shows "up" but is not."""
        new = time.monotonic() - marks["t"]

        def live(i, p):
            if p.get("state") != "up":
                return False
            was = marks.get((self.relays[i].name, p.get("direction"),
                             p.get("name")))
            return (was is None or p.get("state_s", new) < new
                    or p.get("bytes_in", 0) > was)

        return self._chain_holds(self._peer_lists(), live)

    def wait_links_live(self, marks, timeout=20):
        """Until links_live(marks).  A blackholed connection comes back
        when TCP next retransmits (the backoff doubles up to seconds) or
        is replaced once its keepalive PING goes unanswered (twice
        idle_timeout): both bounded, so a deadline holds."""
        wait_for(lambda: self.links_live(marks), timeout,
                 "every link of the chain to carry bytes after the heal",
                 interval=0.1)


@pytest.fixture
def ns_chain(relay_root):
    """ns_chain(n=3, store=(3,), opts={}, hop_opts={}) -> NsChain, built
    (not started).  Destroyed at teardown, whatever the outcome."""
    made = []

    def make(**kw):
        c = NsChain(relay_root, **kw)
        made.append(c)
        return c.build()
    yield make
    errors = []
    for c in made:
        errors += c.destroy()
    if errors:
        pytest.fail("namespace teardown: %s" % "; ".join(errors))
