#!/usr/bin/env python3
"""Ground-truth lab for echoloc: real OpenSSH sessions through delayed links, captured at known vantages.

Run as root on Debian 12 (Python 3.11 standard library only):

    python3 lab/run-lab.py                      # every scenario at every delay setting -> pcaps/lab/
    python3 lab/run-lab.py --quick              # every scenario at the first setting, shorter command
    python3 lab/run-lab.py --scenario jump,nested --setting tr30-rs7.5 --out /tmp/lab
    python3 lab/run-lab.py --openssh-prefix /opt/openssh-10 --scenario direct --setting tr30-rs7.5
                                                # OpenSSH 10.0 with keystroke-timing obfuscation (chaff)
                                                # -> pcaps/lab/obfuscated-direct-tr30-rs7.5/

For each scenario and delay setting the lab builds network namespaces (typist T, middle host R, server S and a
bridge namespace B), joins each link through a userspace delaying bridge (AF_PACKET; the kernel here has no
netem), starts Debian's sshd (and socat for the port-forward case), lets a scripted typist drive `ssh` through a
pty, captures with tcpdump at the server edge, the relay's outer side and the typist edge, and writes
`<out>/<scenario>-<setting>/{server-edge,relay-outer,typist-edge}.pcap` with `truth.json` beside them.
See lab/README.md for the meaning of every truth field.

Non-interactive sessions (pcaps/exec, see exec_main):
    run-lab.py exec [--out FILE] [--sessions N] [--delay-ms D] [--jitter-ms J] [--seed N]

Internal helper modes (started by the lab itself inside namespaces):
    run-lab.py _bridge --a IF --b IF --delay-ms D [--jitter-ms J] [--seed N] [--stats FILE]
    run-lab.py _ping DST [--count N] [--interval S]
"""

import argparse
import bisect
import ctypes
import fcntl
import heapq
import json
import os
import pty
import random
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import termios
import time
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_OUT = REPO / "pcaps" / "lab"
SCHEMA = "echoloc-lab-truth/1"

ETH_P_ALL = 0x0003
SPIN_NS = 400_000  # the bridge polls for the last 0.4 ms before a frame is due
MAX_LATE_FRAMES = 2  # the check accepts this many bridge frames sent 1-5 ms late (see check_capture_set)
SSHD = "/usr/sbin/sshd"
CIPHER = "chacha20-poly1305@openssh.com"

# OpenSSH binaries in use: Debian's by default; `--openssh-prefix DIR` switches client and every sshd to a build
# installed under DIR (DIR/bin/ssh, DIR/sbin/sshd, DIR/libexec/sshd-{session,auth}), e.g. OpenSSH 10.0 with
# keystroke-timing obfuscation. Set once in main().
SW = {"prefix": None, "ssh": "ssh", "sshd": SSHD, "obscure": None, "use_pam_line": True, "source": None}
# OpenSSH >= 9.5 client (clientloop.c, readconf.h): chaff on a ~interval grid (each interval fuzzed by +-10 %,
# plus a per-burst rate offset of up to +10 %) until 1024 + uniform(0, 2048) ms after the last keystroke.
OBFUSCATION_DEFAULT_INTERVAL_MS = 20
OBFUSCATION_FUZZ_PERCENT = 10
CHAFF_AFTER_LAST_KEY_MS = (1024, 1024 + 2048)

# Delay settings: one-way delay of the typist--relay link (tr) and of the relay--server link (rs), and the
# jitter (uniform +-J ms, never reordering) applied on both links.
SETTINGS = {
    "tr30-rs7.5": {"tr_ms": 30.0, "rs_ms": 7.5, "jitter_ms": 0.0},
    "tr5-rs15": {"tr_ms": 5.0, "rs_ms": 15.0, "jitter_ms": 0.0},
    "tr20-rs10-j2": {"tr_ms": 20.0, "rs_ms": 10.0, "jitter_ms": 2.0},
}
# Settings that can be named with --setting but are not part of "all" (so a full run makes the same 15 sets).
EXTRA_SETTINGS = {
    "tr20-rs10": {"tr_ms": 20.0, "rs_ms": 10.0, "jitter_ms": 0.0},
    # An intercontinental typist (150 ms round trip): typing gaps overlap the round trip.
    "tr60-rs15": {"tr_ms": 60.0, "rs_ms": 15.0, "jitter_ms": 0.0},
    # A jittery access link (Wi-Fi, mobile): +-8 ms per frame on each link.
    "tr20-rs10-j8": {"tr_ms": 20.0, "rs_ms": 10.0, "jitter_ms": 8.0},
    # Far typists (round trips of 196-440 ms): with --typing fast (8-10 keys/s) two to four keystrokes are in
    # flight at once.
    "tr80-rs18": {"tr_ms": 80.0, "rs_ms": 18.0, "jitter_ms": 0.0},
    "tr150-rs30": {"tr_ms": 150.0, "rs_ms": 30.0, "jitter_ms": 0.0},
    "tr200-rs20": {"tr_ms": 200.0, "rs_ms": 20.0, "jitter_ms": 0.0},
}
# Typing profiles (--typing): seconds between keys of a line (uniform) and before each line (think pause).
# "fast" sets are named <scenario>-<setting>-fast so sets typed at the normal pace are never overwritten.
TYPING = {
    "normal": {"gap_s": (0.12, 0.35), "think_s": (0.45, 0.9), "suffix": ""},
    "fast": {"gap_s": (0.100, 0.125), "think_s": (0.45, 0.9), "suffix": "-fast"},  # 8-10 keys per second
}
SCENARIOS = ["direct", "jump", "portfwd", "nested", "routed"]

# Documentation addresses only (RFC 5737).
IP = {
    "T": "192.0.2.10",  # typist, on the typist--relay link
    "R_t": "192.0.2.1",  # relay/router, typist side
    "R_s": "198.51.100.1",  # relay/router, server side
    "S": "198.51.100.20",  # server, on the relay--server link
    "T_direct": "203.0.113.10",  # direct scenario: T and S share one L2 segment through both bridges
    "S_direct": "203.0.113.20",
}
FWD_PORT = 2222
# socat on R (portfwd). Towards T it writes at once (TCP_NODELAY on the listening socket, inherited by each accepted
# connection): with Nagle on that side, whenever the T--R round trip exceeds the time between two echoes (a far
# typist typing fast, or chaff every ~20 ms) socat held each echo until T acknowledged the one before (seen: echo
# at R's outer side 94 ms instead of 36, two echoes per segment at tr80-rs18 with fast typing), a delay no
# configured link explains. Towards S socat keeps its defaults (Nagle on): keys are >= 100 ms apart and S answers
# within the R--S round trip, so they leave one per segment; chaff every ~20 ms does not (see analyze_chaff).
SOCAT_LISTEN = f"TCP-LISTEN:{FWD_PORT},bind={IP['R_t']},reuseaddr,fork,nodelay"
SOCAT_CONNECT = f"TCP:{IP['S']}:22"

VANTAGE_FILES = {
    "server_edge": "server-edge.pcap",
    "relay_outer": "relay-outer.pcap",
    "typist_edge": "typist-edge.pcap",
}
VANTAGE_TEXT = {
    "server_edge": "S's own veth end (eth0 in namespace S), on the relay--server link (T--S path in direct)",
    "relay_outer": "R's veth end on the typist--relay link (eth0 in namespace R)",
    "typist_edge": "T's own veth end (eth0 in namespace T)",
}
PROMPT = {"server": "server$ ", "relay": "relay$ "}
DA_QUERY = b"\x1b[c"
DA_REPLY = b"\x1b[?64;1;2c"


class LabError(Exception):
    pass


class Stop(Exception):
    pass


def log(msg):
    print(f"[lab {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def rfc3339_ns(t_ns):
    s, ns = divmod(t_ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(s)) + f".{ns:09d}Z"


def r3(x):
    return None if x is None else round(x, 3)


# --------------------------------------------------------------------------------------------------------------
# Helper mode: userspace delaying bridge
# --------------------------------------------------------------------------------------------------------------


def bridge_main(argv):
    p = argparse.ArgumentParser(prog="run-lab.py _bridge")
    p.add_argument("--a", required=True)
    p.add_argument("--b", required=True)
    p.add_argument("--delay-ms", type=float, required=True)
    p.add_argument("--jitter-ms", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--stats")
    a = p.parse_args(argv)

    realtime = True
    try:  # keep the delay exact when the machine is busy (the bridge sleeps almost all the time)
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(20))
    except (OSError, AttributeError):
        realtime = False
    try:  # no page faults on a page the kernel reclaimed while the bridge idled (stalls of ~10 ms seen)
        locked = ctypes.CDLL(None, use_errno=True).mlockall(3) == 0  # MCL_CURRENT | MCL_FUTURE
    except OSError:
        locked = False

    socks = []
    for name in (a.a, a.b):
        # protocol 0 until bound, so no frame from another interface is ever queued on this socket
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
        s.bind((name, ETH_P_ALL))
        s.setblocking(False)
        socks.append(s)
    sa, sb = socks
    peer = {sa: sb, sb: sa}
    label = {sa: f"{a.a}->{a.b}", sb: f"{a.b}->{a.a}"}
    delay_ns = round(a.delay_ms * 1e6)
    jitter_ns = round(a.jitter_ms * 1e6)
    rng = random.Random(a.seed)
    heap = []
    seq = 0
    last_due = {sa: 0, sb: 0}
    stats = {
        lbl: {"frames": 0, "bytes": 0, "late_us_sum": 0.0, "late_us_max": 0.0, "late_over_1ms": 0, "clamped": 0,
              "worst_at_ns": None, "worst_bytes": None}
        for lbl in label.values()
    }

    def on_term(signum, frame):
        raise Stop()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    print("ready", flush=True)
    try:
        while True:
            if heap:
                # sleep until shortly before the next frame is due, then poll: a timed sleep here wakes
                # 50-200 us late, the last SPIN_NS are spent polling so frames leave on time
                left = heap[0][0] - time.monotonic_ns()
                timeout = 0.0 if left <= SPIN_NS else (left - SPIN_NS) / 1e9
            else:
                timeout = 1.0
            ready, _, _ = select.select([sa, sb], [], [], timeout)
            for s in ready:
                while True:
                    try:
                        data, addr = s.recvfrom(65535)
                    except BlockingIOError:
                        break
                    if addr[2] == socket.PACKET_OUTGOING:
                        continue  # our own transmission on this interface
                    t = time.monotonic_ns()
                    d = delay_ns + (rng.randint(-jitter_ns, jitter_ns) if jitter_ns else 0)
                    dst = peer[s]
                    due = t + d
                    if due < last_due[dst]:  # jitter never reorders frames
                        due = last_due[dst]
                        stats[label[s]]["clamped"] += 1
                    last_due[dst] = due
                    heapq.heappush(heap, (due, seq, dst, data, label[s]))
                    seq += 1
            now = time.monotonic_ns()
            while heap and heap[0][0] <= now:
                due, _, dst, data, lbl = heapq.heappop(heap)
                try:
                    dst.send(data)
                except OSError:
                    pass
                late = (time.monotonic_ns() - due) / 1000.0
                st = stats[lbl]
                st["frames"] += 1
                st["bytes"] += len(data)
                st["late_us_sum"] += late
                if late > st["late_us_max"]:
                    st["late_us_max"] = late
                    st["worst_at_ns"] = time.time_ns()
                    st["worst_bytes"] = len(data)
                st["late_over_1ms"] += late > 1000.0
                now = time.monotonic_ns()
    except Stop:
        pass
    finally:
        if a.stats:
            out = {
                "link": f"{a.a}<->{a.b}",
                "one_way_delay_ms": a.delay_ms,
                "jitter_ms": a.jitter_ms,
                "realtime_scheduling": realtime,
                "memory_locked": locked,
                "directions": {},
            }
            for lbl, st in stats.items():
                n = st["frames"]
                out["directions"][lbl] = {
                    "frames": n,
                    "bytes": st["bytes"],
                    "send_lateness_us_mean": round(st["late_us_sum"] / n, 1) if n else None,
                    "send_lateness_us_max": round(st["late_us_max"], 1),
                    "frames_late_over_1ms": st["late_over_1ms"],
                    "latest_frame_sent_ns": st["worst_at_ns"],
                    "latest_frame_bytes": st["worst_bytes"],
                    "jitter_clamped_frames": st["clamped"],
                }
            Path(a.stats).write_text(json.dumps(out, indent=1))


# --------------------------------------------------------------------------------------------------------------
# Helper mode: ICMP echo (iputils ping is not installed on the base image; this is the same measurement)
# --------------------------------------------------------------------------------------------------------------


def icmp_checksum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def ping_main(argv):
    p = argparse.ArgumentParser(prog="run-lab.py _ping")
    p.add_argument("dst")
    p.add_argument("--count", type=int, default=5)
    p.add_argument("--interval", type=float, default=0.05)
    a = p.parse_args(argv)
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    ident = os.getpid() & 0xFFFF
    rtts = []
    for seq in range(a.count):
        payload = bytes(range(56))
        hdr = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
        pkt = struct.pack("!BBHHH", 8, 0, icmp_checksum(hdr + payload), ident, seq) + payload
        t0 = time.perf_counter_ns()
        s.sendto(pkt, (a.dst, 0))
        deadline = t0 + 1_000_000_000
        rtt = None
        while rtt is None:
            left = (deadline - time.perf_counter_ns()) / 1e9
            if left <= 0:
                break
            r, _, _ = select.select([s], [], [], left)
            if not r:
                break
            data = s.recv(2048)
            t1 = time.perf_counter_ns()
            ihl = (data[0] & 0x0F) * 4
            typ, _code, _ck, rid, rseq = struct.unpack("!BBHHH", data[ihl : ihl + 8])
            if typ == 0 and rid == ident and rseq == seq:
                rtt = (t1 - t0) / 1e6
        rtts.append(None if rtt is None else round(rtt, 3))
        time.sleep(a.interval)
    print(json.dumps({"dst": a.dst, "rtt_ms": rtts}))


# --------------------------------------------------------------------------------------------------------------
# Namespaces and processes
# --------------------------------------------------------------------------------------------------------------


class Lab:
    """Namespaces and processes of one scenario run; cleanup() removes everything it created."""

    def __init__(self):
        self.tag = f"el{os.getpid() % 100000}"
        self.namespaces = []
        self.procs = []  # (name, Popen)

    def ns(self, role):
        return f"{self.tag}{role}"

    def run(self, *cmd, ns=None, check=True):
        full = (["ip", "netns", "exec", self.ns(ns)] if ns else []) + [str(c) for c in cmd]
        r = subprocess.run(full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if check and r.returncode != 0:
            raise LabError(f"{' '.join(full)} failed ({r.returncode}): {r.stderr.strip()}")
        return r.stdout

    def add_ns(self, role):
        name = self.ns(role)
        self.run("ip", "netns", "add", name)
        self.namespaces.append(name)
        self.run("ip", "link", "set", "lo", "up", ns=role)
        self.run("sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1",
                 "net.ipv6.conf.default.disable_ipv6=1", ns=role)

    def veth(self, role1, if1, role2, if2):
        self.run("ip", "-n", self.ns(role1), "link", "add", if1, "type", "veth",
                 "peer", "name", if2, "netns", self.ns(role2))
        for role, ifn in ((role1, if1), (role2, if2)):
            self.run("sysctl", "-q", "-w", f"net.ipv6.conf.{ifn}.disable_ipv6=1", ns=role)
            self.run("ethtool", "-K", ifn, "tso", "off", "gso", "off", "gro", "off", "tx", "off", "rx", "off",
                     ns=role)
            self.run("ip", "link", "set", ifn, "up", ns=role)

    def addr(self, role, ifn, cidr):
        self.run("ip", "addr", "add", cidr, "dev", ifn, ns=role)

    def spawn(self, name, role, cmd, stdout=None, stderr=None):
        full = ["ip", "netns", "exec", self.ns(role)] + [str(c) for c in cmd]
        p = subprocess.Popen(full, stdin=subprocess.DEVNULL, stdout=stdout or subprocess.DEVNULL,
                             stderr=stderr or subprocess.DEVNULL, start_new_session=True)
        self.procs.append((name, p))
        return p

    def stop(self, p, sig=signal.SIGTERM, timeout=3.0):
        if p.poll() is None:
            try:
                os.killpg(p.pid, sig)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait(2)

    def cleanup(self):
        for _name, p in reversed(self.procs):
            self.stop(p)
        for name in reversed(self.namespaces):
            # anything still living in a namespace this run created was started by this run
            pids = subprocess.run(["ip", "netns", "pids", name], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                  text=True).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            subprocess.run(["ip", "netns", "del", name], stderr=subprocess.DEVNULL)
        self.namespaces = []
        self.procs = []

    def wait_listen(self, role, port, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.run("ss", "-Hltn", f"sport = :{port}", ns=role).strip():
                return
            time.sleep(0.05)
        raise LabError(f"nothing listens on port {port} in {role}")

    def ping(self, role, dst, count=11):
        out = self.run(sys.executable, Path(__file__).resolve(), "_ping", dst, "--count", count, ns=role)
        return json.loads(out)


# --------------------------------------------------------------------------------------------------------------
# Scripted typist
# --------------------------------------------------------------------------------------------------------------


def read_pty(t, timeout):
    """Wait up to `timeout` s for output of a scripted terminal `t` (its fd, eof, buf, keys and pending key): add
    it to t.buf, note it as the first output after the pending key, and return when it was read (None if nothing
    came, or at the end of the output)."""
    if t.eof:
        time.sleep(max(0.0, timeout))
        return None
    r, _, _ = select.select([t.fd], [], [], max(0.0, timeout))
    if not r:
        return None
    try:
        chunk = os.read(t.fd, 65536)
    except OSError:
        chunk = b""
    now = time.time_ns()
    if not chunk:
        t.eof = True
        return None
    t.buf += chunk
    if t.pending is not None:
        k = t.keys[t.pending]
        k["first_output_ns"] = now
        k["first_output_after_ms"] = r3((now - k["t_ns"]) / 1e6)
        t.pending = None
    return now


class Typist:
    """Drives `ssh` through a pty like a person at an xterm; logs every keystroke with CLOCK_REALTIME."""

    def __init__(self, argv, rng, gap=(0.12, 0.35), think=(0.45, 0.9), idle=0.0, path_first=None, timeout=30.0):
        self.rng = rng
        self.gap = gap
        self.think = think
        self.timeout = timeout  # default wait for a prompt or for ssh to exit (far typists log in slowly)
        self.idle = idle  # extra pause before every line but the first (not drawn from rng: same typing pattern)
        path = "/usr/sbin:/usr/bin:/sbin:/bin"
        if path_first:  # e.g. the OpenSSH build's bin: ProxyJump's `ssh -W` is started by name when needed
            path = f"{path_first}:{path}"
        env = {"PATH": path, "TERM": "xterm", "HOME": "/root", "LANG": "C"}
        pid, fd = pty.fork()
        if pid == 0:
            try:
                os.execvpe(argv[0], argv, env)
            finally:
                os._exit(127)
        self.pid, self.fd = pid, fd
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        self.buf = bytearray()
        self.mark = 0
        self.da_scan = 0
        self.eof = False
        self.keys = []
        self.queries = []
        self.pending = None  # index of the last keystroke whose first output is not yet seen
        self.hop = 1
        self.into = "server"
        self.status = None

    def _read_once(self, timeout):
        now = read_pty(self, timeout)
        if now is None:
            return
        while True:  # answer Device Attributes queries the way xterm does
            i = self.buf.find(DA_QUERY, max(0, self.da_scan))
            if i < 0:
                self.da_scan = max(0, len(self.buf) - len(DA_QUERY) + 1)
                break
            self.da_scan = i + len(DA_QUERY)
            t_reply = time.time_ns()
            os.write(self.fd, DA_REPLY)
            self.queries.append({
                "query": "ESC [ c (primary Device Attributes)",
                "reply": "ESC [ ? 6 4 ; 1 ; 2 c",
                "reply_bytes": len(DA_REPLY),
                "hop": self.hop,
                "answered_by": "typist pty (xterm-like)",
                "query_seen_ns": now,
                "query_seen_rfc3339": rfc3339_ns(now),
                "reply_sent_ns": t_reply,
                "reply_sent_rfc3339": rfc3339_ns(t_reply),
            })

    def pump_until(self, deadline_mono):
        while True:
            left = deadline_mono - time.monotonic()
            if left <= 0:
                return
            self._read_once(left)

    def pump_for(self, seconds):
        self.pump_until(time.monotonic() + seconds)

    def expect(self, pat, timeout=None):
        timeout = self.timeout if timeout is None else timeout
        pat = pat.encode()
        deadline = time.monotonic() + timeout
        while True:
            i = self.buf.find(pat, self.mark)
            if i >= 0:
                self.mark = i + len(pat)
                return time.time_ns()
            if self.eof or time.monotonic() > deadline:
                tail = bytes(self.buf[-400:])
                raise LabError(f"typist: no {pat!r} within {timeout}s; last output: {tail!r}")
            self._read_once(min(0.05, deadline - time.monotonic()))

    def wait_exit(self, timeout=None):
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while not self.eof and time.monotonic() < deadline:
            self._read_once(min(0.05, deadline - time.monotonic()))
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = os.waitstatus_to_exitcode(status)
                return time.time_ns()
            time.sleep(0.02)
        raise LabError("typist: ssh did not exit")

    def key(self, ch):
        t = time.time_ns()
        os.write(self.fd, ch.encode())
        self.keys.append({
            "index": len(self.keys),
            "key": "Enter" if ch == "\r" else ch,
            "bytes": len(ch.encode()),
            "t_ns": t,
            "t_rfc3339": rfc3339_ns(t),
            "t_epoch": t / 1e9,
            "hop": self.hop,
            "typed_into": self.into,
        })
        self.pending = len(self.keys) - 1

    def type_line(self, text, expect=None):
        """Type text with human gaps, press Enter, then wait for `expect` (a prompt) or for ssh to exit."""
        if self.keys and self.idle > 0:
            self.pump_for(self.idle)
        self.pump_for(self.rng.uniform(*self.think))
        for ch in text:
            self.key(ch)
            self.pump_for(self.rng.uniform(*self.gap))
        self.key("\r")
        self.mark = len(self.buf)
        if expect is None:
            return self.wait_exit()
        return self.expect(expect)

    def close(self):
        if self.status is None:
            try:
                os.kill(self.pid, signal.SIGTERM)
                os.waitpid(self.pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        try:
            os.close(self.fd)
        except OSError:
            pass


# --------------------------------------------------------------------------------------------------------------
# Truth: expected figures from the configured delays
# --------------------------------------------------------------------------------------------------------------


def positions(scn, d1, d2):
    """One-way delay from T to each vantage and each host (a line T --d1-- R --d2-- S)."""
    vant = {"typist_edge": 0.0, "server_edge": d1 + d2}
    if scn != "direct":
        vant["relay_outer"] = d1
    return vant


def expected_at(scn, phase_hop, d1, d2, vantage_pos):
    """Expected figures at a vantage at one-way distance `vantage_pos` from T, for the ssh hop in use.

    Returns None when the vantage carries no ssh traffic in that phase.
    """
    relay_pos = d1
    server_pos = d1 + d2
    if scn in ("direct", "routed"):
        conn = (0.0, server_pos)  # one TCP connection T <-> S
        app_server = server_pos
    elif scn in ("jump", "portfwd") or (scn == "nested" and phase_hop == 2):
        conn = (0.0, relay_pos) if vantage_pos <= relay_pos else (relay_pos, server_pos)
        app_server = server_pos  # the pty that echoes is on S
    else:  # nested, hop 1: ssh to the relay only
        if vantage_pos > relay_pos:
            return None
        conn = (0.0, relay_pos)
        app_server = relay_pos
    client_leg = 2 * (vantage_pos - conn[0])
    server_leg = 2 * (conn[1] - vantage_pos)
    app_client = 2 * (vantage_pos - 0.0)  # the ssh client (typist's keyboard) is always on T
    app_srv = 2 * (app_server - vantage_pos)
    hid_c = app_client - client_leg
    hid_s = app_srv - server_leg
    return {
        "tcp_connection": {"client_pos_ms": conn[0], "server_pos_ms": conn[1]},
        "transport_rtt_ms": {"client_leg": r3(client_leg), "server_leg": r3(server_leg)},
        "application_rtt_ms": {"client_side": r3(app_client), "server_side": r3(app_srv)},
        "hidden_latency_ms": {"client_side": r3(hid_c), "server_side": r3(hid_s)},
        "relay_suspected": {"client_side": hid_c > 0, "server_side": hid_s > 0},
        "keystroke_to_echo_ms": r3(app_srv),
    }


def ttl_expectation(scn, vantage):
    if scn != "routed":
        return {"client_to_server": 64, "server_to_client": 64}
    return {
        "typist_edge": {"client_to_server": 64, "server_to_client": 63},
        "relay_outer": {"client_to_server": 64, "server_to_client": 63},  # R's ingress / egress towards T
        "server_edge": {"client_to_server": 63, "server_to_client": 64},
    }[vantage]


# --------------------------------------------------------------------------------------------------------------
# Checking captures with tshark
# --------------------------------------------------------------------------------------------------------------

TSHARK_FIELDS = ["frame.time_epoch", "ip.src", "tcp.srcport", "ip.dst", "tcp.dstport", "tcp.stream",
                 "tcp.flags.syn", "tcp.flags.ack", "tcp.len", "tcp.analysis.initial_rtt", "ip.ttl",
                 "tcp.flags.fin", "tcp.flags.reset", "tcp.analysis.retransmission", "tcp.seq"]


def epoch_ns(s):
    whole, _, frac = s.partition(".")
    return int(whole) * 1_000_000_000 + int((frac + "000000000")[:9])


def read_tcp(pcap):
    cmd = ["tshark", "-n", "-r", str(pcap), "-Y", "tcp", "-T", "fields", "-E", "separator=|"]
    for f in TSHARK_FIELDS:
        cmd += ["-e", f]
    out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout
    rows = []
    for line in out.splitlines():
        v = line.split("|")
        if len(v) != len(TSHARK_FIELDS):
            continue
        rows.append({
            "t": epoch_ns(v[0]), "src": v[1], "sport": int(v[2]), "dst": v[3], "dport": int(v[4]),
            "stream": int(v[5]), "syn": v[6] in ("1", "True"), "ack": v[7] in ("1", "True"),
            "len": int(v[8] or 0), "irtt": float(v[9]) if v[9] else None, "ttl": v[10],
            "fin": v[11] in ("1", "True"), "rst": v[12] in ("1", "True"), "retrans": v[13] != "",
            "seq": int(v[14] or 0),  # relative: socat forwards the same bytes, so a byte has one seq on both sides
        })
    return rows


def check_capture_set(truth, outdir):
    """Measure handshake legs and keystroke-to-echo times at each vantage with tshark; compare with truth."""
    if not shutil.which("tshark"):
        return {"tool": None, "note": "tshark not installed; no check made"}
    d1 = truth["links"]["typist_relay"]["one_way_delay_ms"]
    d2 = truth["links"]["relay_server"]["one_way_delay_ms"]
    jit = truth["links"]["typist_relay"]["jitter_ms"]
    server_pos = d1 + d2
    pos_of_ip = {IP["T"]: 0.0, IP["R_t"]: d1, IP["R_s"]: d1, IP["S"]: server_pos,
                 IP["T_direct"]: 0.0, IP["S_direct"]: server_pos}

    def links_between(lo, hi):  # delaying bridges crossed between two points of the line T--R--S
        return sum(1 for a, b in ((0.0, d1), (d1, server_pos)) if a >= lo - 1e-9 and b <= hi + 1e-9)

    ver = subprocess.run(["tshark", "-v"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         text=True).stdout.splitlines()[0]
    result = {"tool": ver, "handshakes": [], "echo": [], "ttl": [], "all_ok": True, "failed": []}

    def verdict(ok, what):
        if not ok:
            result["all_ok"] = False
            result["failed"].append(what)

    # The kernel here is PREEMPT_NONE: during a parallel build a woken SCHED_FIFO bridge can still wait a few
    # ms for the CPU. Accept at most MAX_LATE_FRAMES frames sent 1-5 ms late (all are counted here).
    dirs = [d for b in truth["measured"]["bridges"] if b for d in b["directions"].values()]
    late = sum(d["frames_late_over_1ms"] for d in dirs)
    worst = max((d["send_lateness_us_max"] for d in dirs), default=0.0) / 1000.0
    result["bridge_frames_late_over_1ms"] = late
    result["bridge_worst_lateness_ms"] = r3(worst)
    verdict(late <= MAX_LATE_FRAMES and worst <= 5.0, f"bridges: {late} frames late > 1 ms, worst {worst:.1f} ms")
    interval = obfuscation_interval(truth)
    # each keystroke's own packet at each vantage (found from its packet at the typist edge plus the one-way
    # delay to the vantage: with a far typist several keys are in flight, so "the next client packet after the
    # key was typed" can be an earlier key still on its way)
    matches = match_keystroke_packets(truth, outdir)
    fwd_hold = forwarder_holds(truth, outdir) if interval else None
    rows_of = {vname: read_tcp(outdir / v["file"]) for vname, v in truth["vantages"].items()}
    hops_typed = sorted({k["hop"] for k in truth["keystrokes"]})
    # without chaff: each key paired with its own echo at every vantage that carries its hop
    pairings = {}
    if not interval:
        for vname, v in truth["vantages"].items():
            data = [r for r in rows_of[vname] if r["len"] > 0]
            for hop in hops_typed:
                if v["expected_by_hop"].get(str(hop)) is not None:
                    idx = [i for i, k in enumerate(truth["keystrokes"]) if k["hop"] == hop and k["key"] != "Enter"]
                    pairings[vname, hop] = pair_echoes(truth["keystrokes"], matches[vname], data, idx)
    # What R adds to each key's round trip: the key -> echo time at R's outer side minus the same at S's edge
    # minus twice the R--S link (bridge) delay. A relay passes key and echo on within ~0.1-0.5 ms in all (a
    # router ~0.05 ms), unless it waits: OpenSSH 9.2's sshd in jump leaves Nagle on for a connection without a
    # session (no pty), so with a far typist typing fast it holds each echo until T has acknowledged the one
    # before. The path's round trip (the truth) is the echo delay minus this hold, which the check compares with
    # the truth at T's side of R; the hold itself is recorded (check.echo[].relay_hold_ms).
    holds = {}
    for hop in hops_typed:
        se, ro = pairings.get(("server_edge", hop)), pairings.get(("relay_outer", hop))
        if se is None or ro is None:
            continue
        at_s = {x["index"]: x["echo_ms"] for x in se["pairs"] if x["echo_ms"] is not None}
        holds[hop] = {x["index"]: x["echo_ms"] - at_s[x["index"]] - 2 * d2
                      for x in ro["pairs"] if x["echo_ms"] is not None and x["index"] in at_s}
    for vname, v in truth["vantages"].items():
        rows = rows_of[vname]
        vpos = v["one_way_from_typist_ms"]
        streams = {}
        for r in rows:
            streams.setdefault(r["stream"], []).append(r)
        for pk in streams.values():
            syn = next((r for r in pk if r["syn"] and not r["ack"]), None)
            if syn is None:
                continue
            synack = next((r for r in pk if r["syn"] and r["ack"] and r["t"] >= syn["t"]), None)
            ack = next((r for r in pk if synack and not r["syn"] and r["ack"] and r["src"] == syn["src"]
                        and r["t"] >= synack["t"]), None)
            if not (synack and ack):
                continue
            exp_s = 2 * (pos_of_ip[syn["dst"]] - vpos)
            exp_c = 2 * (vpos - pos_of_ip[syn["src"]])
            meas_s = (synack["t"] - syn["t"]) / 1e6
            meas_c = (ack["t"] - synack["t"]) / 1e6
            tol_s = 1.5 + 2 * jit * links_between(vpos, pos_of_ip[syn["dst"]])
            tol_c = 1.5 + 2 * jit * links_between(pos_of_ip[syn["src"]], vpos)
            ok = abs(meas_s - exp_s) <= tol_s and abs(meas_c - exp_c) <= tol_c
            verdict(ok, f"handshake at {vname}: server leg {meas_s:.2f}/{exp_s}, client leg {meas_c:.2f}/{exp_c}")
            result["handshakes"].append({
                "vantage": vname,
                "connection": f"{syn['src']}:{syn['sport']} -> {syn['dst']}:{syn['dport']}",
                "server_leg_ms": {"expected": r3(exp_s), "measured_syn_to_synack": r3(meas_s)},
                "client_leg_ms": {"expected": r3(exp_c), "measured_synack_to_ack": r3(meas_c)},
                "tshark_initial_rtt_ms": r3(ack["irtt"] * 1000) if ack["irtt"] is not None else None,
                "tolerance_ms": {"server_leg": tol_s, "client_leg": tol_c},
                "ok": ok,
            })
            ttl_exp = v["expected_ip_ttl"]
            c2s = {r["ttl"] for r in pk if r["src"] == syn["src"]}
            s2c = {r["ttl"] for r in pk if r["src"] == syn["dst"]}
            tok = c2s == {str(ttl_exp["client_to_server"])} and s2c == {str(ttl_exp["server_to_client"])}
            verdict(tok, f"TTL at {vname}")
            result["ttl"].append({"vantage": vname, "client_to_server": sorted(c2s), "server_to_client": sorted(s2c),
                                  "ok": tok})
        # keystroke -> echo at this vantage: first client->server data packet after the keystroke, then the
        # first server->client data packet after that
        client_ips = {IP["T"], IP["T_direct"], IP["R_s"]}
        data = [r for r in rows if r["len"] > 0]
        if vname == "typist_edge":  # how closely the keystroke log matches the packets on the wire
            lag = []
            for i, k in enumerate(truth["keystrokes"]):
                if interval:  # matched by match_keystroke_packets (the client holds keys for the next slot)
                    up = matches["typist_edge"][i]
                else:
                    up = next((r for r in data if r["t"] >= k["t_ns"] and r["src"] in client_ips), None)
                k["typist_edge_packet_ns"] = up["t"] if up is not None else None
                if up is not None:
                    lag.append((up["t"] - k["t_ns"]) / 1e6)
            lag.sort()
            if interval:  # held for at most one (fuzzed) interval; the first key of a burst leaves at once
                lim_med, lim_max = interval * 1.1 + 1.0, interval * 2.2 + 5.0
            else:
                lim_med, lim_max = 1.0, None
            ok = (bool(lag) and len(lag) == len(truth["keystrokes"]) and lag[len(lag) // 2] < lim_med
                  and (lim_max is None or lag[-1] < lim_max))
            verdict(ok, f"keystrokes on the wire: {len(lag)} of {len(truth['keystrokes'])} found")
            result["keystroke_log_to_typist_edge_packet_ms"] = {
                "keystrokes": len(truth["keystrokes"]), "matched": len(lag),
                "median": r3(lag[len(lag) // 2]) if lag else None, "max": r3(lag[-1]) if lag else None, "ok": ok}
            if interval:
                result["keystroke_log_to_typist_edge_packet_ms"]["note"] = (
                    "keystroke-timing obfuscation: the client sends a key at its next ~interval slot, the first "
                    "key of a burst at once")
        for hop in sorted({k["hop"] for k in truth["keystrokes"]}):
            exp = v["expected_by_hop"].get(str(hop))
            if exp is None:
                continue
            e = exp["keystroke_to_echo_ms"]
            hop_keys = [i for i, k in enumerate(truth["keystrokes"]) if k["hop"] == hop and k["key"] != "Enter"]
            if interval:
                samples, fwd, raw = [], [], []
                for i in hop_keys:
                    # chaff: the first server packet after a key may be the PONG of an earlier chaff packet;
                    # take the server packet nearest to the expected echo, within half a chaff interval
                    up = matches[vname][i]
                    if up is None:
                        continue
                    # portfwd, T's side of R: the echo comes later by the time socat held the key (Nagle
                    # towards S), measured per key from the server-edge capture (forwarder_holds)
                    h = fwd_hold.get(up["seq"], 0.0) if fwd_hold is not None and vname != "server_edge" else 0.0
                    fwd.append(h)
                    want = up["t"] + (e + h) * 1e6
                    cand = [r for r in data if r["sport"] == up["dport"] and r["dport"] == up["sport"]
                            and abs(r["t"] - want) <= interval * 0.5e6]
                    down = min(cand, key=lambda r: abs(r["t"] - want), default=None)
                    if down is not None:
                        samples.append((down["t"] - up["t"]) / 1e6 - h)
                        raw.append((down["t"] - up["t"]) / 1e6)
                raw.sort()
                pairing = None
            else:
                pairing = pairings[vname, hop]
                samples = [x["echo_ms"] for x in pairing["pairs"] if x["echo_ms"] is not None]
                raw = sorted(samples)
                hold = holds.get(hop) if vname != "server_edge" else None
                if hold is not None:  # T's side of a relay: the path's round trip is the echo minus the hold
                    samples = [x["echo_ms"] - hold[x["index"]] for x in pairing["pairs"]
                               if x["echo_ms"] is not None and x["index"] in hold]
            if not samples:
                if pairing is not None:
                    verdict(False, f"echo at {vname} hop {hop}: no keystroke paired with an echo")
                continue
            samples.sort()
            med = samples[len(samples) // 2]
            tol = 2.0 + 2 * jit * links_between(vpos, vpos + e / 2)
            ok = abs(med - e) <= tol
            verdict(ok, f"echo at {vname} hop {hop}: median {med:.2f}, expected {e}")
            entry = {
                "vantage": vname, "hop": hop, "samples": len(samples),
                "expected_ms": e, "measured_median_ms": r3(med),
                "measured_min_ms": r3(samples[0]), "measured_max_ms": r3(samples[-1]),
                "tolerance_ms": tol, "ok": ok,
            }
            if pairing is None and fwd_hold is not None and vname != "server_edge" and fwd:
                fv = sorted(fwd)
                entry.update({
                    "measured_median_ms": r3(raw[len(raw) // 2]), "measured_min_ms": r3(raw[0]),
                    "measured_max_ms": r3(raw[-1]),
                    "measured_median_minus_relay_hold_ms": r3(med),
                    "relay_hold_ms": {"n": len(fv), "min": r3(fv[0]), "median": r3(fv[len(fv) // 2]),
                                      "max": r3(fv[-1]), "over_2ms": sum(1 for x in fv if x > 2.0)},
                    "note": "echo found within half an interval of key + expected echo + socat's hold of that key "
                            "towards S (forwarder_holds); ok compares the median of (echo - hold) with the expected "
                            "echo; measured_* are the echo delays as seen",
                })
            if pairing is not None:
                if hold is not None:
                    hv = sorted(hold.values())
                    entry.update({
                        "measured_median_ms": r3(raw[len(raw) // 2]), "measured_min_ms": r3(raw[0]),
                        "measured_max_ms": r3(raw[-1]),
                        "measured_median_minus_relay_hold_ms": r3(med),
                        "relay_hold_ms": {"n": len(hv), "min": r3(hv[0]), "median": r3(hv[len(hv) // 2]),
                                          "max": r3(hv[-1]), "over_2ms": sum(1 for x in hv if x > 2.0)},
                        "note": "ok compares the median of (echo - relay hold) with the expected echo; relay hold "
                                "per key = (key -> echo at relay_outer) - (key -> echo at server_edge) - 2 x R--S "
                                "delay: what R added to the round trip (see check_capture_set)",
                    })
                # every key typed into this hop must have its own packet and its own echo here
                pok = len(samples) == len(hop_keys) and not pairing["problems"]
                verdict(pok, f"echo pairing at {vname} hop {hop}: {len(samples)} of {len(hop_keys)} keys "
                             f"paired; {pairing['problems']}")
                entry.update({
                    "keys": len(hop_keys),
                    "pairing": "each key's own packet at this vantage (its typist-edge packet + one-way delay), "
                               "then echoes in order: key n's echo is the first server data segment after key "
                               "n's packet not taken by an earlier key's echo (a segment of m x the key's size "
                               "carries m echoes)",
                    "keys_in_flight_max": pairing["keys_in_flight_max"],
                    "keys_with_later_key_sent_before_their_echo": pairing["overtaken"],
                    "echo_segments_carrying_several_echoes": pairing["coalesced_segments"],
                    "pairing_ok": pok,
                })
                if pairing["problems"]:
                    entry["pairing_problems"] = pairing["problems"]
            result["echo"].append(entry)
    if interval and truth.get("chaff"):
        for vname, v in truth["vantages"].items():
            if v.get("chaff_note") and v.get("chaff_expected") is None:
                continue  # no exact chaff truth where the stream is re-segmented (portfwd, S's edge)
            c = v.get("chaff", {})
            ok = c.get("consistent", False) and v.get("chaff_expected", 0) > 2 * truth["keystrokes_typed"]
            verdict(ok, f"chaff at {vname}: {v.get('chaff_expected')} chaff packets, details {c.get('problems')}")
        logged = truth["chaff"].get("logged_by_client", {}).get("total")
        if logged is not None and truth["scenario"] != "nested":
            for vname, v in truth["vantages"].items():
                if v.get("chaff_note") and v.get("chaff_expected") is None:
                    continue
                # on the client's own TCP connection every chaff packet passes; beyond a relay that ends the
                # connection (jump: S's side) the relay may drop the last one or two in flight
                own = vname == "typist_edge" or truth["scenario"] in ("direct", "routed") or vname == "relay_outer"
                x = v.get("chaff_expected")
                ok = x == logged if own else x is not None and logged - 2 <= x <= logged
                verdict(ok, f"chaff at {vname}: {x} in the capture, client logged {logged}")
    return result


def obfuscation_interval(truth):
    """Client chaff interval (ms) of a set made with keystroke-timing obfuscation, else None."""
    sw = truth["software"]
    if not sw.get("keystroke_timing_obfuscation"):
        return None
    return (sw.get("obscure_keystroke_timing") or {}).get("interval_ms") or OBFUSCATION_DEFAULT_INTERVAL_MS


def pct(sorted_vals, q):
    """Nearest-rank percentile of an ascending list (q in 0..100)."""
    if not sorted_vals:
        return None
    i = min(len(sorted_vals) - 1, max(0, round(q / 100 * (len(sorted_vals) - 1))))
    return sorted_vals[i]


def stats_ms(vals):
    v = sorted(vals)
    if not v:
        return {"n": 0}
    return {"n": len(v), "min": r3(v[0]), "p10": r3(pct(v, 10)), "median": r3(pct(v, 50)), "p90": r3(pct(v, 90)),
            "max": r3(v[-1]), "mean": r3(sum(v) / len(v))}


def ssh_packet_len(payload):
    """TCP payload of one SSH binary packet with chacha20-poly1305 (4-byte length, padding >= 4 to a multiple of
    8 over padding-length byte + payload + padding, 16-byte tag)."""
    body = 1 + payload
    pad = 8 - body % 8
    if pad < 4:
        pad += 8
    return 4 + body + pad + 16


def wrapped_len(inner):
    """An inner ssh packet of `inner` bytes carried as SSH_MSG_CHANNEL_DATA by an outer ssh (ProxyJump)."""
    return ssh_packet_len(1 + 4 + 4 + inner)


KEYSTROKE_LEN = ssh_packet_len(1 + 4 + 4 + 1)  # CHANNEL_DATA with one byte: 36
DISCONNECT_LEN = ssh_packet_len(1 + 4 + 4 + len("disconnected by user") + 4)  # client's DISCONNECT: 60


def ssh_sizes_for_session_end(size):
    """(lone DISCONNECT, CHANNEL_CLOSE + DISCONNECT in one segment) for a vantage whose keystrokes are `size`:
    36 on the session's own connection, 76 where it is wrapped in an outer ssh."""
    if size == KEYSTROKE_LEN:
        return DISCONNECT_LEN, KEYSTROKE_LEN + DISCONNECT_LEN
    if size == wrapped_len(KEYSTROKE_LEN):
        return wrapped_len(DISCONNECT_LEN), wrapped_len(KEYSTROKE_LEN + DISCONNECT_LEN)
    return None, None


def match_keystroke_packets(truth, outdir):
    """Each keystroke's client->server data packet at each vantage.

    Typist edge: the first client data packet at or after the key's write to the pty (with chaff the client
    holds a key for its next slot, at most ~1.1 intervals, and sends no chaff while a key waits; without chaff
    the key leaves at once). Other vantages: the client data packet from 2 ms (+2 x jitter per link) before to
    0.4 interval (10 ms without chaff) after that packet's time plus the one-way delay from T to the vantage (a
    relay's sshd may forward a few ms late on a busy machine); chaff and keys leave >= 0.9 interval apart, keys
    without chaff >= 100 ms, so the match is unique. S's edge in portfwd: the segment carrying the key's bytes
    (same relative TCP sequence number: socat forwards the bytes unchanged but may hold and coalesce them).
    Returns {vantage: [row or None per keystroke]}.
    """
    interval = obfuscation_interval(truth)
    d1 = truth["links"]["typist_relay"]["one_way_delay_ms"]
    jit = truth["links"]["typist_relay"]["jitter_ms"]
    client_ips = {IP["T"], IP["T_direct"], IP["R_s"]}
    vants = truth["vantages"]
    # without obfuscation a key leaves at once (typist edge: < 50 ms even on a busy machine; keys are >= 100 ms
    # apart) and a relay forwards it within a few ms (nested hop 2 passes R's pty and ssh client)
    te_limit_ms = 2.2 * interval + 50 if interval else 50.0
    relay_late_ms = 0.4 * interval if interval else 10.0
    order = ["typist_edge"] + [v for v in vants if v != "typist_edge"]
    out = {}
    te = []
    for vname in order:
        up = [r for r in read_tcp(outdir / vants[vname]["file"])
              if r["len"] > 0 and not r["retrans"] and r["src"] in client_ips and r["dport"] in (22, FWD_PORT)]
        times = [r["t"] for r in up]
        vpos = vants[vname]["one_way_from_typist_ms"]
        links = 0 if vpos == 0 else 1 if abs(vpos - d1) < 1e-9 else 2
        tol_ns = (2.0 + 2 * jit * links) * 1e6
        late_ns = max(tol_ns, relay_late_ms * 1e6 + 2 * jit * links * 1e6)
        got = []
        for i, k in enumerate(truth["keystrokes"]):
            r = None
            if vname == "typist_edge":
                j = bisect.bisect_left(times, k["t_ns"])
                if j < len(up) and up[j]["t"] - k["t_ns"] <= te_limit_ms * 1e6:
                    r = up[j]
            elif te[i] is not None and truth["scenario"] == "portfwd" and vname == "server_edge":
                by_seq = sorted(up, key=lambda x: x["seq"])
                j = bisect.bisect_right([x["seq"] for x in by_seq], te[i]["seq"]) - 1
                if j >= 0 and te[i]["seq"] < by_seq[j]["seq"] + by_seq[j]["len"]:
                    r = by_seq[j]
            elif te[i] is not None:
                want = te[i]["t"] + vpos * 1e6
                j = bisect.bisect_left(times, want - tol_ns)
                if j < len(up) and up[j]["t"] - want <= late_ns:
                    r = up[j]
            got.append(r)
        if vname == "typist_edge":
            te = got
        out[vname] = got
    return out


def pair_echoes(keys, ups, data, idx):
    """Pair keystrokes with their own echoes at one vantage (sessions without chaff).

    keys: truth["keystrokes"]; ups: each key's packet at this vantage (match_keystroke_packets) or None; data:
    the vantage's TCP data rows; idx: indices of the keys to pair (one hop, no Enter). A pty echoes the keys of a
    line in order, one segment each, so the echoes are taken in order: key n's echo is the first server data
    segment on its TCP connection after key n's packet that no earlier key's echo took. When a relay that
    re-segments (socat, Nagle on) holds an echo until an earlier one is acknowledged, two echoes can share a
    segment: a segment of m x the key packet's size carries m echoes (one, when its size is not a multiple: an
    echo sent together with other output). Pairing by order does not depend on the expected delay, so it also
    holds when several keys are in flight (keys typed 100 ms apart by a typist 200-400 ms away).
    """
    used = {}  # segment identity -> echoes it already carried
    last = {}  # TCP connection -> time of the segment carrying the last echo taken
    pairs, problems, coalesced = [], [], set()
    by_conn = {}
    for r in data:
        by_conn.setdefault((r["src"], r["sport"], r["dst"], r["dport"]), []).append(r)
    for rows in by_conn.values():
        rows.sort(key=lambda r: r["t"])
    echo_times = []
    for i in idx:
        up = ups[i]
        if up is None:
            pairs.append({"index": i, "echo_ms": None})
            problems.append(f"key {i} ({keys[i]['key']!r}): no packet at this vantage")
            continue
        conn = (up["dst"], up["dport"], up["src"], up["sport"])
        start = max(up["t"], last.get(conn, 0))
        down = None
        for r in by_conn.get(conn, []):
            if r["t"] <= up["t"] or r["t"] < start:
                continue
            if r["len"] < up["len"]:
                continue
            key = (r["t"], r["sport"])
            # m x the key's size: m echoes; another size: an echo held and sent with other output (e.g. the last
            # key's echo with the output of Enter), counted once
            cap = r["len"] // up["len"] if r["len"] % up["len"] == 0 else 1
            if used.get(key, 0) < cap:
                used[key] = used.get(key, 0) + 1
                if used[key] > 1:
                    coalesced.add(key)
                down = r
                break
        if down is None:
            pairs.append({"index": i, "echo_ms": None})
            problems.append(f"key {i} ({keys[i]['key']!r}): no echo")
            continue
        last[conn] = down["t"]
        pairs.append({"index": i, "up_ns": up["t"], "down_ns": down["t"], "echo_ms": (down["t"] - up["t"]) / 1e6})
        echo_times.append((up["t"], down["t"]))
    # keys in flight: how many keys (this hop) had left this vantage and not yet seen their echo, at most
    inflight = 0
    overtaken = 0
    ups_t = sorted(u for u, _ in echo_times)
    for u, d in echo_times:
        n = sum(1 for x in ups_t if u <= x < d)  # this key and the keys sent after it before its echo
        inflight = max(inflight, n)
        overtaken += n > 1
    return {"pairs": pairs, "problems": problems, "coalesced_segments": len(coalesced),
            "keys_in_flight_max": inflight, "overtaken": overtaken}


def parse_client_chaff_log(path):
    """Chaff bursts as logged by the OpenSSH client at DEBUG3 (clientloop.c obfuscate_keystroke_timing)."""
    bursts = []
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        if "obfuscate_keystroke_timing: starting" in line:
            bursts.append({"chaff_sent": None, "stop_reason": None})
        elif "obfuscate_keystroke_timing: stopping:" in line:
            rest = line.split("stopping:", 1)[1].strip()
            reason, _, tail = rest.partition(" (")
            n = int(tail.split()[0]) if tail[:1].isdigit() else None
            if not bursts or bursts[-1]["stop_reason"] is not None:
                bursts.append({"chaff_sent": None, "stop_reason": None})
            bursts[-1].update(chaff_sent=n, stop_reason=reason)
    return {"source": "ssh client log at LogLevel DEBUG3 (-E): obfuscate_keystroke_timing starting/stopping lines",
            "bursts": bursts, "total": sum(b["chaff_sent"] or 0 for b in bursts)}


def forwarder_holds(truth, outdir):
    """portfwd: how long socat on R kept each client packet before sending it towards S, by relative TCP seq.

    socat forwards the client's bytes unchanged, so a byte has the same relative sequence number on T's
    connection (typist edge, relay outer) and on socat's connection to S (server edge). For each client data
    packet at R's outer side: (time of the server-edge segment carrying its first byte) - (its time at R's outer
    side) - the R--S delay. Nagle on that side holds a packet while an earlier small one is unacknowledged, i.e.
    for up to one R--S round trip when chaff comes every ~20 ms. Returns {seq: hold_ms}, or None when the
    scenario is not portfwd.
    """
    if truth["scenario"] != "portfwd" or "relay_outer" not in truth["vantages"]:
        return None
    d2 = truth["links"]["relay_server"]["one_way_delay_ms"]
    client_ips = {IP["T"], IP["R_s"]}

    def client_data(vname):
        return sorted((r for r in read_tcp(outdir / truth["vantages"][vname]["file"])
                       if r["len"] > 0 and not r["retrans"] and r["src"] in client_ips
                       and r["dport"] in (22, FWD_PORT)), key=lambda r: r["seq"])

    se = client_data("server_edge")
    starts = [r["seq"] for r in se]
    out = {}
    for r in client_data("relay_outer"):
        j = bisect.bisect_right(starts, r["seq"]) - 1
        if j >= 0 and r["seq"] < se[j]["seq"] + se[j]["len"]:
            out[r["seq"]] = (se[j]["t"] - r["t"]) / 1e6 - d2
    return out


def resegmenting_vantage(truth, vname):
    """Why chaff cannot be counted from TCP segments at this vantage (a text), or None where it can.

    portfwd, S's edge: socat on R forwards the byte stream on its own TCP connection to S with Nagle on (its
    default), so whenever the R--S round trip is longer than the time between two client packets (chaff every
    ~20 ms) it holds a packet until the one before is acknowledged and sends what piled up as one segment: one
    segment can carry a keystroke and a chaff packet, or several chaff packets (seen: 72-byte segments). The
    vantages on the client's own TCP connection (typist edge, relay outer) see the client's segments as sent:
    one ssh packet each, counted exactly.
    """
    if truth["scenario"] == "portfwd" and vname == "server_edge":
        return ("chaff not counted here: socat on R re-segments the ssh byte stream towards S (Nagle on): "
                "whenever the R--S round trip exceeds the time between two client packets it sends a keystroke and "
                "chaff, or several chaff packets, in one TCP segment, so the number of segments is not the "
                "number of ssh packets. The exact count is at typist_edge and relay_outer (the client's own TCP "
                "connection), and in chaff.logged_by_client.")
    return None


def analyze_chaff(truth, outdir):
    """Chaff at each vantage, from the captures: chaff_expected, grid spacing, bursts, PONG vs echo delays.

    Keystroke size class at a vantage: TCP payload length of the keystroke packets there (36 with
    chacha20-poly1305 on the ssh connection itself; larger where the session is wrapped in an outer ssh, as on
    T--R in jump). Interactive part: from the first keystroke packet to the end of the session, which is the
    client's first data packet of another size after the last keystroke (its SSH_MSG_DISCONNECT, alone or
    wrapped, or the outer ssh's own end in jump), or the connection's first FIN/RST if no such packet passes
    the vantage. When that packet is a lone DISCONNECT, the size-class packet just before it (< 2 ms) is the
    client's CHANNEL_CLOSE answering the server's and is left out; when CLOSE and DISCONNECT share a segment
    there is nothing to leave out. chaff_expected = client size-class packets in the interactive part minus
    keystrokes typed. Also adds the client's hold of each terminal reply to truth["terminal_queries"].
    """
    interval = obfuscation_interval(truth)
    matches = match_keystroke_packets(truth, outdir)
    fwd_hold = forwarder_holds(truth, outdir)  # portfwd: socat's hold of each client packet towards S
    keys = truth["keystrokes"]
    for i, k in enumerate(keys):
        r = matches["typist_edge"][i]
        k["typist_edge_packet_ns"] = r["t"] if r is not None else None
    client_ips = {IP["T"], IP["T_direct"], IP["R_s"]}
    idle_gap_ns = 5 * interval * 1e6  # a longer silence ends a burst
    # The client holds a terminal's answer for its next slot like a key: the query -> reply turnaround at the
    # typist edge is the typist's at-once answer plus that hold, not a round trip through anything
    te_rows = [r for r in read_tcp(outdir / truth["vantages"]["typist_edge"]["file"])
               if r["len"] > 0 and not r["retrans"]]
    for q in truth.get("terminal_queries", []):
        qp = next((r for r in reversed(te_rows) if r["sport"] in (22, FWD_PORT) and r["t"] <= q["query_seen_ns"]),
                  None)
        rp = next((r for r in te_rows if r["dport"] in (22, FWD_PORT) and r["src"] in client_ips
                   and r["t"] >= q["reply_sent_ns"]), None)
        q["typist_edge_query_packet_ns"] = qp["t"] if qp else None
        q["typist_edge_reply_packet_ns"] = rp["t"] if rp else None
        q["reply_held_by_client_ms"] = r3((rp["t"] - q["reply_sent_ns"]) / 1e6) if rp else None
        q["typist_edge_query_to_reply_ms"] = r3((rp["t"] - qp["t"]) / 1e6) if rp and qp else None

    def pk(r):  # identity of a packet across separate reads of the same capture
        return (r["t"], r["stream"], r["src"], r["sport"])

    summary = {"interval_ms": interval, "vantages": {}}
    for vname, v in truth["vantages"].items():
        problems = []
        rows = read_tcp(outdir / v["file"])
        retrans = sum(1 for r in rows if r["retrans"])
        rows = [r for r in rows if not r["retrans"]]  # a segment sent again is not another packet of the client
        got = matches[vname]
        streams = {r["stream"] for r in got if r is not None}
        up = [r for r in rows if r["len"] > 0 and r["stream"] in streams and r["src"] in client_ips
              and r["dport"] in (22, FWD_PORT)]
        down = [r for r in rows if r["len"] > 0 and r["stream"] in streams and r["sport"] in (22, FWD_PORT)]
        matched = [r for r in got if r is not None]
        if len(matched) != len(keys):
            problems.append(f"{len(keys) - len(matched)} keystrokes without a packet")
        if not matched:
            v["chaff_expected"] = None
            v["chaff"] = {"consistent": False, "problems": problems}
            if resegmenting_vantage(truth, vname):
                v["chaff_note"] = resegmenting_vantage(truth, vname)
            continue
        sizes = {}
        for r in matched:
            sizes[r["len"]] = sizes.get(r["len"], 0) + 1
        size = max(sizes, key=sizes.get)
        if len(sizes) > 1:
            problems.append(f"keystroke packets of several sizes {sizes}")
        start = min(r["t"] for r in matched)
        last_key = max(r["t"] for r in matched)
        after = [r for r in up if r["t"] > last_key]
        end_pkt = next((r for r in after if r["len"] != size), None)
        if end_pkt is not None:
            # The client answers the server's channel close with its own CHANNEL_CLOSE (keystroke size) and
            # then sends DISCONNECT; both leave in one loop, as two segments or coalesced into one. Which one
            # it was follows from the end packet's size (a chaff packet can leave in the same instant, so
            # timing alone cannot tell).
            end = end_pkt["t"]
            lone, both = ssh_sizes_for_session_end(size)
            if end_pkt["len"] == lone:
                cands = [r for r in after if r["len"] == size and r["t"] < end and end - r["t"] < 2_000_000]
                if cands:
                    end = cands[-1]["t"]
                    end_text = ("the client's CHANNEL_CLOSE (keystroke size, left out), sent just before its "
                                "DISCONNECT")
                else:
                    problems.append("DISCONNECT without a separate CHANNEL_CLOSE before it")
                    end_text = "the client's DISCONNECT"
            elif end_pkt["len"] == both:
                end_text = "the client's CHANNEL_CLOSE and DISCONNECT coalesced into one segment"
            elif lone != DISCONNECT_LEN and end_pkt["len"] in (DISCONNECT_LEN, KEYSTROKE_LEN):
                # wrapped session (T--R in jump): the outer `ssh -W` ended its own channel or connection before
                # forwarding the inner client's last packets
                end_text = "the outer ssh's own EOF/CLOSE/DISCONNECT (the inner client's last packets not sent)"
            else:
                problems.append(f"unexpected end-of-session packet of {end_pkt['len']} bytes")
                end_text = "the client's first non-size-class packet after the last keystroke"
        else:
            # e.g. the server edge in jump: the relay's sshd ends its TCP connection to S (FIN/RST) without
            # forwarding the inner client's last packets; the connection's end ends the interactive part
            fin = next((r for r in rows if r["stream"] in streams and r["t"] > last_key and (r["fin"] or r["rst"])),
                       None)
            if fin is None:
                problems.append("no end of session (DISCONNECT, FIN or RST) after the last keystroke")
                end = up[-1]["t"] + 1
                end_text = "end of capture"
            else:
                end = fin["t"]
                end_text = "first FIN/RST of the session's TCP connection (no DISCONNECT passed this vantage)"
        in_part = [r for r in up if start <= r["t"] < end and r["len"] == size]
        key_ids = {pk(r) for r in matched}
        chaff = [r for r in in_part if pk(r) not in key_ids]
        n_expected = len(in_part) - len(keys)
        if n_expected != len(chaff):
            problems.append(f"size-class packets minus keystrokes {n_expected} != unmatched size-class "
                            f"packets {len(chaff)}")
        # grid: intervals between consecutive size-class client packets inside bursts
        seq = sorted(in_part, key=lambda r: r["t"])
        gaps = [(b["t"] - a["t"]) / 1e6 for a, b in zip(seq, seq[1:]) if b["t"] - a["t"] < idle_gap_ns]
        bursts = []
        for r in seq:
            if not bursts or r["t"] - bursts[-1][-1]["t"] >= idle_gap_ns:
                bursts.append([])
            bursts[-1].append(r)
        burst_out = []
        for b in bursts:
            ks = [r for r in b if pk(r) in key_ids]
            last_k = max((r["t"] for r in ks), default=None)
            burst_out.append({
                "start_ns": b[0]["t"], "end_ns": b[-1]["t"], "packets": len(b), "keystrokes": len(ks),
                "chaff": len(b) - len(ks),
                "last_keystroke_to_last_chaff_ms": r3((b[-1]["t"] - last_k) / 1e6) if last_k else None,
                "ended_by": "session end" if b is bursts[-1] and end - b[-1]["t"] < 3 * interval * 1e6
                else "chaff time expired",
            })
        # answers: the first server data packet after each size-class client packet, within half an interval of
        # where the answer is due (the packet time plus the round trip to the answering sshd at this vantage)
        e_ms = v["expected"]["keystroke_to_echo_ms"]
        dtimes = [r["t"] for r in down]
        echo_d, echo_enter_d, pong_d, pong_sizes, unanswered, other = [], [], [], {}, 0, []
        held = []
        enter_ids = {pk(r) for i, r in enumerate(got) if r is not None and keys[i]["key"] == "Enter"}
        for r in seq:
            h = fwd_hold.get(r["seq"], 0.0) if fwd_hold is not None and vname != "server_edge" else 0.0
            held.append(h)
            lo = max(r["t"] + 1, r["t"] + (e_ms + h - interval / 2) * 1e6)
            j = bisect.bisect_left(dtimes, lo)
            resp = (down[j] if j < len(down) and down[j]["t"] <= r["t"] + (e_ms + h + interval / 2) * 1e6
                    else None)
            if pk(r) in key_ids:
                if resp is not None:
                    (echo_enter_d if pk(r) in enter_ids else echo_d).append((resp["t"] - r["t"]) / 1e6)
            elif resp is None:
                unanswered += 1
            else:
                pong_sizes[resp["len"]] = pong_sizes.get(resp["len"], 0) + 1
                if resp["len"] == size:  # a PONG has the size of a keystroke echo
                    pong_d.append((resp["t"] - r["t"]) / 1e6)
                else:  # e.g. a chaff packet just before the shell's output or the session close
                    other.append((resp["t"] - r["t"]) / 1e6)
        v["chaff_expected"] = n_expected
        resegmented = resegmenting_vantage(truth, vname)
        v["chaff"] = {
            "keystroke_size_class_tcp_payload": size,
            "client_packets_of_size_class_in_interactive_part": len(in_part),
            "keystrokes_typed": len(keys),
            "keystroke_packets_matched": len(matched),
            "chaff_expected": n_expected,
            "interactive_part": {
                "start_ns": start, "end_ns": end,
                "start": "first keystroke packet at this vantage",
                "end": end_text,
                "end_packet_tcp_payload": end_pkt["len"] if end_pkt else None,
            },
            "tcp_retransmissions_left_out": retrans,
            "grid_interval_ms": stats_ms(gaps),
            "bursts": burst_out,
            "server_answer_delay_ms": {
                "what": "client size-class packet at this vantage -> first server data packet after it, within "
                        "half an interval of the expected round trip to the answering sshd "
                        "(vantages.*.expected.keystroke_to_echo_ms)",
                "chaff_to_pong": stats_ms(pong_d),
                "chaff_answer_tcp_payload": {str(k): n for k, n in sorted(pong_sizes.items())},
                "chaff_followed_by_other_output_ms": [r3(x) for x in sorted(other)],
                "chaff_unanswered": unanswered,
                "keystroke_to_echo": stats_ms(echo_d),
                "enter_to_first_output": stats_ms(echo_enter_d),
            },
            "consistent": not problems,
            "problems": problems,
        }
        if fwd_hold is not None and vname != "server_edge":
            v["chaff"]["server_answer_delay_ms"]["socat_hold_towards_server_ms"] = stats_ms(held)
            v["chaff"]["server_answer_delay_ms"]["what"] += (
                "; portfwd: plus the time socat held that packet before sending it towards S (Nagle, measured per "
                "packet from the server-edge capture by TCP sequence number: socat_hold_towards_server_ms); the "
                "delays listed are as seen, hold included")
        if resegmented:
            # socat re-segments the byte stream towards S: a segment here can carry a key and a chaff packet, or
            # two chaff packets, so counting segments does not count chaff. No exact truth here.
            multi = {}
            for r in up:
                if r["len"] > size and r["len"] % size == 0 and start <= r["t"] < end:
                    multi[str(r["len"])] = multi.get(str(r["len"]), 0) + 1
            v["chaff_expected"] = None
            v["chaff_note"] = resegmented
            v["chaff"].update({
                "chaff_expected": None,
                "segments_of_size_class_minus_keystrokes": n_expected,
                "client_segments_of_several_size_class_packets": multi,
                "note": "figures from segments, not ssh packets: not a chaff count (see chaff_note)",
            })
        summary["vantages"][vname] = {"chaff_expected": v["chaff_expected"], "size_class": size,
                                      "grid_median_ms": v["chaff"]["grid_interval_ms"].get("median")}
    return summary


# --------------------------------------------------------------------------------------------------------------
# One scenario at one setting
# --------------------------------------------------------------------------------------------------------------

SSHD_CONFIG = """\
Port 22
ListenAddress 0.0.0.0
HostKey {hostkey}
PidFile {pidfile}
AuthorizedKeysFile {authkeys}
{usepam}StrictModes no
PermitRootLogin yes
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PrintMotd no
PrintLastLog no
UseDNS no
AllowTcpForwarding yes
X11Forwarding no
AllowAgentForwarding no
Ciphers {cipher}
{force_command}LogLevel INFO
"""

SHELL_RC = """\
# lab shell for {host}: fixed prompt, no history file, helpers used by the typist
PS1='{prompt}'
unset HISTFILE PROMPT_COMMAND
# da: ask the terminal for its primary Device Attributes three times, as vim asks three questions at start (a
# sensor needs two replies that agree, and the first question can leave in one segment with Enter's echo),
# reading each answer silently before the next question
da() {{ for _q in 1 2 3; do printf '\\033[c'; IFS= read -r -s -t 2 -d c _reply; done; }}
ssh() {{ command {ssh} -F {client_config} "$@"; }}
"""

CLIENT_CONFIG = """\
Host relay
  HostName {relay}
Host server
  HostName {server}
Host *
  User root
  IdentityFile {key}
  IdentitiesOnly yes
  StrictHostKeyChecking no
  UserKnownHostsFile /dev/null
  GlobalKnownHostsFile /dev/null
  CheckHostIP no
  UpdateHostKeys no
  LogLevel ERROR
  Ciphers {cipher}
  ControlMaster no
  ControlPath none
  ForwardAgent no
  ForwardX11 no
{extra}"""

SCENARIO_TEXT = {
    "direct": "T runs `ssh server`; T and S share one L2 segment through both delaying bridges chained "
              "(no middle host)",
    "jump": "T runs `ssh -J relay server`: outer ssh T->R, R's sshd opens TCP R->S, inner ssh end to end T<->S",
    "portfwd": f"socat on R forwards {IP['R_t']}:{FWD_PORT} to {IP['S']}:22; T runs `ssh -p {FWD_PORT} relay`",
    "nested": "T runs `ssh relay`, then types `ssh server` in the relay's shell, a command, and exits both",
    "routed": "R forwards IP (ip_forward=1, static routes, TTL drops by one); T runs `ssh server`; no relay",
}


def run_one(scn, setting_name, setting, args, keydir, outroot):
    d1, d2, jit = setting["tr_ms"], setting["rs_ms"], setting["jitter_ms"]
    typing_name = getattr(args, "typing", None) or "normal"
    typing = TYPING[typing_name]
    name = f"{args.set_prefix}{scn}-{setting_name}{typing['suffix']}"
    # Waits that cross the links scale with the round trip T<->S: a login is ~10 round trips (~20 through a
    # jump host or a nested ssh), a prompt after Enter one or two.
    rtt_s = 2 * (d1 + d2 + 2 * jit) / 1000.0
    wait_s = 30.0 + 60 * rtt_s
    outdir = outroot / name
    outdir.mkdir(parents=True, exist_ok=True)
    for f in outdir.iterdir():
        if f.suffix == ".pcap" or f.name == "truth.json":
            f.unlink()
    work = Path(tempfile.mkdtemp(prefix=f"echoloc-lab-{name}-"))
    lab = Lab()
    seed = zlib.crc32(f"{args.seed}:{name}".encode())
    typist = None
    t_start = time.monotonic()
    log(f"{name}: building topology ({SCENARIO_TEXT[scn]})")
    try:
        has_r = scn != "direct"
        links, _typist_ip, server_ip = build_line(lab, None if not has_r else "router" if scn == "routed" else "relay",
                                                  d1, d2)

        bridges = [start_bridge(lab, i, ia, ib, d, jit, seed + i, work) for i, (ia, ib, d) in enumerate(links)]

        # ssh material: client config, shell rc files, sshd configs
        client_cfg = work / "ssh_config"
        extra = f"  ObscureKeystrokeTiming {SW['obscure']}\n" if SW["obscure"] else ""
        client_cfg.write_text(CLIENT_CONFIG.format(relay=IP["R_t"], server=server_ip, key=keydir / "id_ed25519",
                                                   cipher=CIPHER, extra=extra))
        sshd_hosts = ["S"] + (["R"] if scn in ("jump", "nested") else [])
        for role in sshd_hosts:
            host = "server" if role == "S" else "relay"
            rc = work / f"rc-{host}"
            rc.write_text(SHELL_RC.format(host=host, prompt=PROMPT[host], client_config=client_cfg, ssh=SW["ssh"]))
            start_sshd(lab, role, host, keydir, work,
                       force_command=f"ForceCommand exec /bin/bash --noprofile --rcfile {rc} -i\n")
        if scn == "portfwd":
            lab.spawn("socat", "R", ["socat", SOCAT_LISTEN, SOCAT_CONNECT], stderr=open(work / "socat.log", "wb"))
        for role in sshd_hosts:
            lab.wait_listen(role, 22)
        if scn == "portfwd":
            lab.wait_listen("R", FWD_PORT)

        # measure through the bridges (this also resolves ARP everywhere before the capture starts)
        pings = {}
        plan = []
        if has_r:
            plan += [("typist->relay", "T", IP["R_t"], 2 * d1), ("relay->server", "R", IP["S"], 2 * d2)]
        if scn in ("direct", "routed"):
            plan += [("typist->server", "T", server_ip, 2 * (d1 + d2))]
        for label, role, dst, conf in plan:
            res = lab.ping(role, dst)
            warm, samples = res["rtt_ms"][0], [x for x in res["rtt_ms"][1:] if x is not None]
            pings[label] = {
                "from": {"T": "typist", "R": "relay"}[role], "to": dst, "configured_rtt_ms": r3(conf),
                "first_probe_ms_incl_arp": warm, "samples_ms": samples,
                "min_ms": min(samples) if samples else None,
                "avg_ms": r3(sum(samples) / len(samples)) if samples else None,
                "median_ms": sorted(samples)[len(samples) // 2] if samples else None,
                "max_ms": max(samples) if samples else None,
                "method": "ICMP echo, 56-byte payload (lab/run-lab.py _ping)",
            }
            log(f"{name}: ping {label}: configured {conf:.1f} ms, measured avg {pings[label]['avg_ms']} ms")

        # captures
        vantages = {"server_edge": ("S", "eth0")}
        if has_r:
            vantages["relay_outer"] = ("R", "eth0")
        vantages["typist_edge"] = ("T", "eth0")
        dumps = []
        for vname, (role, ifn) in vantages.items():
            dumps.append(start_capture(lab, vname, role, ifn, outdir / VANTAGE_FILES[vname]))
        time.sleep(0.3)

        # the typist
        rng = random.Random(seed)
        ssh_cmd = ["ip", "netns", "exec", lab.ns("T"), SW["ssh"], "-F", str(client_cfg)]
        client_log = work / "ssh-client.log"
        if SW["obscure"]:
            # DEBUG3 into a file (not the pty): the client logs each chaff burst ("obfuscate_keystroke_timing:
            # starting ... stopping: REASON (N chaff packets sent)"), the client's own count of chaff
            ssh_cmd += ["-o", "LogLevel=DEBUG3", "-E", str(client_log)]
        if scn == "jump":
            ssh_cmd += ["-J", "relay", "server"]
        elif scn == "portfwd":
            ssh_cmd += ["-p", str(FWD_PORT), "relay"]
        elif scn == "nested":
            ssh_cmd += ["relay"]
        else:
            ssh_cmd += ["server"]
        command = "uname" if args.quick else "ls /etc | wc -l"
        typist = Typist(ssh_cmd, rng, gap=typing["gap_s"], think=typing["think_s"], idle=args.idle_after_line,
                        path_first=str(Path(SW["prefix"]) / "bin") if SW["prefix"] else None, timeout=wait_s)
        t0 = time.time_ns()
        timeline = []
        if scn == "nested":
            typist.hop, typist.into = 1, "relay"
            t_prompt = typist.expect(PROMPT["relay"])
            timeline.append({"hop": 1, "shell": "relay", "start_ns": t_prompt})
            t_srv = typist.type_line("ssh server", expect=PROMPT["server"])
            timeline[-1]["end_ns"] = t_srv
            timeline.append({"hop": 2, "shell": "server", "start_ns": t_srv})
            typist.hop, typist.into = 2, "server"
            typist.type_line(command, expect=PROMPT["server"])
            typist.type_line("da", expect=PROMPT["server"])
            t_back = typist.type_line("exit", expect=PROMPT["relay"])
            timeline[-1]["end_ns"] = t_back
            typist.hop, typist.into = 1, "relay"
            timeline.append({"hop": 1, "shell": "relay", "start_ns": t_back})
            t_end = typist.type_line("exit")
            timeline[-1]["end_ns"] = t_end
        else:
            t_prompt = typist.expect(PROMPT["server"])
            timeline.append({"hop": 1, "shell": "server", "start_ns": t_prompt})
            typist.type_line(command, expect=PROMPT["server"])
            typist.type_line("da", expect=PROMPT["server"])
            t_end = typist.type_line("exit")
            timeline[-1]["end_ns"] = t_end
        for ph in timeline:
            ph["start_rfc3339"] = rfc3339_ns(ph["start_ns"])
            ph["end_rfc3339"] = rfc3339_ns(ph["end_ns"])
        login_ms = (t_prompt - t0) / 1e6
        time.sleep(max(1.0, 3 * rtt_s))  # FIN/ACK exchanges cross the delayed links
        for p in dumps:
            lab.stop(p, signal.SIGINT)
        for p, _ in bridges:
            lab.stop(p)
        bridge_stats = [json.loads(s.read_text()) if s.exists() else None for _, s in bridges]
        if not typist.queries:
            raise LabError("the Device Attributes query never reached the typist")

        # truth
        hops = sorted({k["hop"] for k in typist.keys})
        vpos = positions(scn, d1, d2)
        vt = {}
        for vname in vantages:
            by_hop = {str(h): expected_at(scn, h, d1, d2, vpos[vname]) for h in hops}
            main = by_hop[str(max(hops))]
            vt[vname] = {
                "file": VANTAGE_FILES[vname],
                "where": VANTAGE_TEXT[vname],
                "namespace_role": vantages[vname][0],
                "interface": vantages[vname][1],
                "one_way_from_typist_ms": vpos[vname],
                "expected": main,
                "expected_by_hop": by_hop,
                "expected_ip_ttl": ttl_expectation(scn, vname),
            }
        addrs = {"typist": IP["T"] if has_r else IP["T_direct"], "server": server_ip, "relay": None}
        if has_r:
            addrs["relay"] = {"typist_side": IP["R_t"], "server_side": IP["R_s"],
                              "role": "router (forwards IP)" if scn == "routed" else "relay host"}
            if scn == "portfwd":
                addrs["relay"]["forwarder"] = {
                    "command": f"socat {SOCAT_LISTEN} {SOCAT_CONNECT}",
                    "towards_typist": "TCP_NODELAY (writes each echo at once)",
                    "towards_server": "socat defaults, Nagle on (can coalesce packets sent closer together than "
                                      "the R--S round trip, e.g. chaff)",
                }
        conns = {
            "direct": [f"{addrs['typist']} -> {server_ip}:22 (ssh)"],
            "routed": [f"{IP['T']} -> {IP['S']}:22 (ssh, routed by R)"],
            "jump": [f"{IP['T']} -> {IP['R_t']}:22 (outer ssh to relay, carries the inner ssh as direct-tcpip)",
                     f"{IP['R_s']} -> {IP['S']}:22 (inner ssh, opened by R's sshd)"],
            "portfwd": [f"{IP['T']} -> {IP['R_t']}:{FWD_PORT} (ssh bytes into socat)",
                        f"{IP['R_s']} -> {IP['S']}:22 (socat's connection carrying the same ssh)"],
            "nested": [f"{IP['T']} -> {IP['R_t']}:22 (ssh to the relay shell, whole session)",
                       f"{IP['R_s']} -> {IP['S']}:22 (ssh typed in the relay shell, hop 2 only)"],
        }[scn]
        keys = typist.keys
        n_by_hop = {str(h): sum(1 for k in keys if k["hop"] == h) for h in hops}
        echo_exp = {str(h): vt["typist_edge"]["expected_by_hop"][str(h)]["keystroke_to_echo_ms"] for h in hops}
        truth = {
            "schema": SCHEMA,
            "generated_by": "lab/run-lab.py",
            "created": rfc3339_ns(time.time_ns()),
            "scenario": scn,
            "setting": setting_name,
            "typing": {"profile": typing_name, "gap_s": list(typing["gap_s"]), "think_s": list(typing["think_s"])},
            "description": SCENARIO_TEXT[scn],
            "client_command": " ".join(ssh_cmd[4:]).replace(str(client_cfg), "CONFIG")
            .replace(str(client_log), "CLIENT_LOG"),
            "software": software_truth(),
            "links": {
                "typist_relay": {"one_way_delay_ms": d1, "jitter_ms": jit,
                                 "note": "T--R link" if has_r else "first bridge of the T--S path"},
                "relay_server": {"one_way_delay_ms": d2, "jitter_ms": jit,
                                 "note": "R--S link" if has_r else "second bridge of the T--S path"},
                "jitter_model": "uniform +-jitter_ms per frame, clamped so frames never reorder",
            },
            "addresses": addrs,
            "tcp_connections": conns,
            "vantages": vt,
            "hop_timeline": timeline,
            "keystrokes_typed": len(keys),
            "keystrokes_by_hop": n_by_hop,
            "typed_lines": (["ssh server"] if scn == "nested" else []) + [command, "da", "exit"]
            + (["exit"] if scn == "nested" else []),
            "expected_echo_delay_typist_edge_ms": echo_exp,
            "keystrokes": keys,
            "terminal_queries": typist.queries,
            "measured": {
                "ping": pings,
                "bridges": bridge_stats,
                "login_to_prompt_ms": r3(login_ms),
                "ssh_exit_status": typist.status,
            },
            "seed": seed,
        }
        if SW["obscure"] not in (None, "no"):
            truth["chaff"] = {"logged_by_client": parse_client_chaff_log(client_log)}
            if shutil.which("tshark"):
                truth["chaff"].update(analyze_chaff(truth, outdir))
        (outdir / "truth.json").write_text(json.dumps(truth, indent=1) + "\n")
        if not args.no_check:
            truth["check"] = check_capture_set(truth, outdir)
            (outdir / "truth.json").write_text(json.dumps(truth, indent=1) + "\n")
        if truth.get("chaff"):
            log(f"{name}: chaff: client logged {truth['chaff']['logged_by_client'].get('total')}; capture "
                + ", ".join(f"{vn} {vv.get('chaff_expected')}" for vn, vv in truth["vantages"].items()))
        log(f"{name}: {len(keys)} keystrokes, {len(typist.queries)} DA query, "
            f"check {'ok' if truth.get('check', {}).get('all_ok') else 'NOT ok or skipped'}, "
            f"{time.monotonic() - t_start:.1f} s")
        return truth
    finally:
        if typist is not None:
            typist.close()
        lab.cleanup()
        if args.keep_work:
            log(f"{name}: work files kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def software_truth():
    sw = {
        "ssh": subprocess.run([SW["ssh"], "-V"], stderr=subprocess.PIPE, text=True).stderr.strip(),
        "kernel": os.uname().release,
        "cipher": CIPHER,
        "keystroke_timing_obfuscation": bool(SW["obscure"]) and SW["obscure"] != "no",
    }
    if SW["prefix"]:
        sw["sshd"] = subprocess.run([SW["sshd"], "-V"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    text=True).stdout.strip()
        sw["openssh_prefix"] = SW["prefix"]
        if SW["source"]:
            sw["openssh_source"] = SW["source"]
        sw["obscure_keystroke_timing"] = {
            "client_option": f"ObscureKeystrokeTiming {SW['obscure']}",
            "interval_ms": obscure_interval_ms(),
            "interval_fuzz_percent": OBFUSCATION_FUZZ_PERCENT,
            "chaff_after_last_keystroke_ms": list(CHAFF_AFTER_LAST_KEY_MS),
            "chaff_message": "SSH2_MSG_PING \"PING!\" (client), answered by SSH2_MSG_PONG (sshd); "
                             "same padded size as a one-byte keystroke",
        }
    return sw


def obscure_interval_ms():
    v = SW["obscure"]
    if not v or v == "no":
        return None
    if v == "yes":
        return OBFUSCATION_DEFAULT_INTERVAL_MS
    return int(v.split(":", 1)[1])


def chaff_summary(truth):
    """One sentence on keystroke-timing obfuscation for SUMMARY.md (empty for sets without it)."""
    if not truth["software"].get("keystroke_timing_obfuscation"):
        return ""
    parts = []
    for vn, vv in truth["vantages"].items():
        c = vv.get("chaff") or {}
        g = c.get("grid_interval_ms") or {}
        a = (c.get("server_answer_delay_ms") or {})
        parts.append(f"{vn} {vv.get('chaff_expected')} (size {c.get('keystroke_size_class_tcp_payload')}, grid "
                     f"median {g.get('median')}, PONG {a.get('chaff_to_pong', {}).get('median')} vs echo "
                     f"{a.get('keystroke_to_echo', {}).get('median')})")
    logged = (truth.get("chaff") or {}).get("logged_by_client", {}).get("total")
    return (f" Keystroke-timing obfuscation ({truth['software']['ssh'].split(',')[0]}): chaff_expected "
            + "; ".join(parts) + f"; client logged {logged} chaff.")


def write_index(outroot):
    """index.json (machine-readable list of capture sets) and SUMMARY.md (the same as tables) in outroot."""
    sets = []
    md = ["# Lab captures: expected figures and what tshark measured", "",
          "Generated by `lab/run-lab.py` (do not edit). All times in ms. transport c/s = expected transport RTT of",
          "the client leg / server leg at that vantage; app = application round trip to the real ssh peer on each",
          "side; hidden = app - transport; relay = relay expected to be suspected (client side / server side);",
          "handshake = SYN->SYN/ACK (server leg) and SYN/ACK->ACK (client leg) measured with tshark; echo =",
          "keystroke packet -> echo packet at the vantage, expected vs measured median.", ""]
    for t in sorted(outroot.glob("*/truth.json")):
        truth = json.loads(t.read_text())
        chk = truth.get("check", {})
        sets.append({
            "dir": t.parent.name,
            "scenario": truth["scenario"],
            "setting": truth["setting"],
            "one_way_ms": {"typist_relay": truth["links"]["typist_relay"]["one_way_delay_ms"],
                           "relay_server": truth["links"]["relay_server"]["one_way_delay_ms"]},
            "jitter_ms": truth["links"]["typist_relay"]["jitter_ms"],
            "files": {v: x["file"] for v, x in truth["vantages"].items()},
            "keystrokes_typed": truth["keystrokes_typed"],
            "check_ok": chk.get("all_ok"),
        })
        if truth["software"].get("keystroke_timing_obfuscation"):
            sets[-1]["ssh"] = truth["software"]["ssh"]
            sets[-1]["keystroke_timing_obfuscation"] = True
            sets[-1]["chaff_expected"] = {vn: vv.get("chaff_expected") for vn, vv in truth["vantages"].items()}
        lk = truth["links"]
        md += [f"## {t.parent.name}", "",
               f"{truth['description']}. One-way T--R {lk['typist_relay']['one_way_delay_ms']}, "
               f"R--S {lk['relay_server']['one_way_delay_ms']}, jitter +-{lk['typist_relay']['jitter_ms']}. "
               f"Keystrokes {truth['keystrokes_typed']} (by hop {truth['keystrokes_by_hop']}); expected echo delay "
               f"at the typist edge {truth['expected_echo_delay_typist_edge_ms']} (by hop). "
               "Ping (configured -> measured median): "
               + ", ".join(f"{k} {p['configured_rtt_ms']} -> {p['median_ms']}"
                                    for k, p in truth["measured"]["ping"].items())
               + f". Check: {'ok' if chk.get('all_ok') else 'NOT ok' if chk else 'not made'}."
               + chaff_summary(truth), "",
               "| vantage (file) | hop | transport c/s | app c/s | hidden c/s | relay c/s | handshake s/c | echo exp -> med |",
               "|---|---|---|---|---|---|---|---|"]
        for vname, v in truth["vantages"].items():
            hs = [h for h in chk.get("handshakes", []) if h["vantage"] == vname]
            for hop, e in v["expected_by_hop"].items():
                if e is None:
                    continue
                ec = next((x for x in chk.get("echo", []) if x["vantage"] == vname and str(x["hop"]) == hop), None)
                hs_txt = "; ".join(f"{h['server_leg_ms']['measured_syn_to_synack']}/"
                                   f"{h['client_leg_ms']['measured_synack_to_ack']}" for h in hs) or "-"
                md.append(
                    f"| {vname} ({v['file']}) | {hop} "
                    f"| {e['transport_rtt_ms']['client_leg']}/{e['transport_rtt_ms']['server_leg']} "
                    f"| {e['application_rtt_ms']['client_side']}/{e['application_rtt_ms']['server_side']} "
                    f"| {e['hidden_latency_ms']['client_side']}/{e['hidden_latency_ms']['server_side']} "
                    f"| {'yes' if e['relay_suspected']['client_side'] else 'no'}/"
                    f"{'yes' if e['relay_suspected']['server_side'] else 'no'} "
                    f"| {hs_txt} "
                    f"| {e['keystroke_to_echo_ms']} -> {ec['measured_median_ms'] if ec else '-'}"
                    + (f" (minus relay hold {ec['measured_median_minus_relay_hold_ms']})"
                       if ec and ec.get("relay_hold_ms") and ec["relay_hold_ms"]["over_2ms"] else "") + " |")
        md.append("")
    (outroot / "index.json").write_text(json.dumps({"schema": SCHEMA, "sets": sets}, indent=1) + "\n")
    (outroot / "SUMMARY.md").write_text("\n".join(md))


def check_openssh_build():
    """The --openssh-prefix build must find its helpers and its privilege-separation setup before any run."""
    probe = Path(tempfile.mkdtemp(prefix="echoloc-lab-sshd-probe-"))
    try:
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", probe / "hostkey"], check=True)
        cfg = probe / "sshd_config"
        cfg.write_text(f"HostKey {probe / 'hostkey'}\nPidFile {probe / 'pid'}\n")
        r = subprocess.run([SW["sshd"], "-T", "-f", cfg], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if r.returncode != 0:
            sys.exit(f"{SW['sshd']} -T failed: {r.stdout.strip()[-400:]}")
        dump = dict(line.split(" ", 1) for line in r.stdout.splitlines() if " " in line)
        SW["use_pam_line"] = "usepam" in dump  # a build --without-pam calls "UsePAM no" unsupported
        for opt in ("sshdsessionpath", "sshdauthpath"):  # OpenSSH >= 9.8 (10.0) splits sshd into helpers
            if opt in dump and not os.access(dump[opt], os.X_OK):
                sys.exit(f"{SW['sshd']}: {opt} {dump[opt]} is missing (was `make install` run for this prefix?)")
        # sshd -t checks the privilege-separation user and chroot directory (configure's default /var/empty:
        # must exist, root-owned, not group/world writable); report its own message if that fails
        r = subprocess.run([SW["sshd"], "-t", "-f", cfg], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if r.returncode != 0:
            sys.exit(f"{SW['sshd']} -t failed: {r.stdout.strip()[-400:]} (privilege separation: the build's "
                     "chroot directory, /var/empty by default, must exist, owned by root, mode 755)")
        log(f"OpenSSH under {SW['prefix']}: "
            + subprocess.run([SW["ssh"], "-V"], stderr=subprocess.PIPE, text=True).stderr.strip()
            + f"; sshd helpers {dump.get('sshdsessionpath', '-')}, {dump.get('sshdauthpath', '-')}")
    finally:
        shutil.rmtree(probe, ignore_errors=True)


def build_line(lab, middle, d1, d2):
    """The line T --d1-- middle --d2-- S in namespaces T, B (the bridges), S and R. `middle`: None (direct: T and S
    on one L2 segment through both bridges, joined by a veth pair inside B), "relay" (a host R with an address on
    each link) or "router" (the same R forwarding IP, with routes through it). Returns the bridges' links
    [(if_a, if_b, one-way delay)], the typist's and the server's address."""
    for role in ("T", "B", "S") + (("R",) if middle else ()):
        lab.add_ns(role)
    if not middle:
        lab.veth("T", "eth0", "B", "t0")
        lab.veth("B", "m0", "B", "m1")  # joins the two bridges: T -[d1]- m0=m1 -[d2]- S
        lab.veth("S", "eth0", "B", "s0")
        lab.addr("T", "eth0", IP["T_direct"] + "/24")
        lab.addr("S", "eth0", IP["S_direct"] + "/24")
        return [("t0", "m0", d1), ("m1", "s0", d2)], IP["T_direct"], IP["S_direct"]
    lab.veth("T", "eth0", "B", "t0")
    lab.veth("R", "eth0", "B", "r0")
    lab.veth("R", "eth1", "B", "r1")
    lab.veth("S", "eth0", "B", "s0")
    lab.addr("T", "eth0", IP["T"] + "/24")
    lab.addr("R", "eth0", IP["R_t"] + "/24")
    lab.addr("R", "eth1", IP["R_s"] + "/24")
    lab.addr("S", "eth0", IP["S"] + "/24")
    if middle == "router":
        lab.run("sysctl", "-q", "-w", "net.ipv4.ip_forward=1", ns="R")
        lab.run("ip", "route", "add", "default", "via", IP["R_t"], ns="T")
        lab.run("ip", "route", "add", "default", "via", IP["R_s"], ns="S")
    return [("t0", "r0", d1), ("r1", "s0", d2)], IP["T"], IP["S"]


def start_bridge(lab, i, ia, ib, delay_ms, jitter_ms, seed, work):
    """A delaying bridge between interfaces ia and ib of namespace B; returns (process, stats file)."""
    stats = work / f"bridge{i}.json"
    p = lab.spawn(f"bridge{i}", "B",
                  [sys.executable, Path(__file__).resolve(), "_bridge", "--a", ia, "--b", ib,
                   "--delay-ms", delay_ms, "--jitter-ms", jitter_ms, "--seed", seed, "--stats", stats],
                  stdout=subprocess.PIPE)
    line = p.stdout.readline().decode().strip()
    if line != "ready":
        raise LabError(f"bridge {ia}<->{ib} did not start")
    return p, stats


def start_capture(lab, vname, role, ifn, file, snaplen=None):
    """tcpdump on interface ifn of a namespace, returned once it listens."""
    p = lab.spawn(f"tcpdump-{vname}", role,
                  ["tcpdump", "-i", ifn, "-w", file, "-U", "--immediate-mode", "--time-stamp-precision=nano",
                   "-n", "-Z", "root"] + (["-s", snaplen] if snaplen else []),
                  stderr=subprocess.PIPE)
    deadline = time.monotonic() + 5
    got = b""
    while b"listening on" not in got and time.monotonic() < deadline:
        r, _, _ = select.select([p.stderr], [], [], 0.2)
        if r:
            got += os.read(p.stderr.fileno(), 4096)
    if b"listening on" not in got:
        raise LabError(f"tcpdump at {vname} did not start: {got!r}")
    return p


def start_sshd(lab, role, host, keydir, work, force_command=""):
    """sshd for `host` ("server" or "relay", its host key in keydir) in namespace `role`."""
    cfg = work / f"sshd_config-{host}"
    cfg.write_text(SSHD_CONFIG.format(hostkey=keydir / f"host-{host}", pidfile=work / f"sshd-{host}.pid",
                                      authkeys=keydir / "authorized_keys", cipher=CIPHER, force_command=force_command,
                                      usepam="UsePAM no\n" if SW["use_pam_line"] else ""))
    # config test first (also checks the privilege-separation user and directory): a clear error here
    # beats "nothing listens on port 22" later
    lab.run(SW["sshd"], "-t", "-f", cfg, ns=role)
    lab.spawn(f"sshd-{host}", role, [SW["sshd"], "-D", "-e", "-f", cfg], stderr=open(work / f"sshd-{host}.log", "wb"))


def make_keys(keydir):
    """The typist's key (authorized everywhere) and the server's and relay's host keys."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "echoloc-lab", "-f",
                    keydir / "id_ed25519"], check=True)
    for host in ("server", "relay"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"echoloc-lab-{host}", "-f",
                        keydir / f"host-{host}"], check=True)
    shutil.copy(keydir / "id_ed25519.pub", keydir / "authorized_keys")


def exec_main(argv):
    """Non-interactive ssh (`ssh server 'echo ...' </dev/null`, nobody types) over one delaying bridge,
    captured at the server's edge with a 96-byte snap length. Truth: no keystrokes and no relay."""
    p = argparse.ArgumentParser(prog="run-lab.py exec", description=exec_main.__doc__)
    p.add_argument("--out", default=str(REPO / "pcaps" / "exec" / "jitter-server-edge.pcap"))
    p.add_argument("--sessions", type=int, default=20)
    p.add_argument("--delay-ms", type=float, default=10.0, help="one-way delay (default 10)")
    p.add_argument("--jitter-ms", type=float, default=8.0, help="uniform +- per frame (default 8)")
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args(argv)
    out = Path(a.out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="echoloc-exec-"))
    lab = Lab()
    try:
        make_keys(work)
        for role in ("T", "B", "S"):
            lab.add_ns(role)
        lab.veth("T", "eth0", "B", "t0")
        lab.veth("S", "eth0", "B", "s0")
        lab.addr("T", "eth0", IP["T_direct"] + "/24")
        lab.addr("S", "eth0", IP["S_direct"] + "/24")
        start_bridge(lab, 0, "t0", "s0", a.delay_ms, a.jitter_ms, a.seed, work)
        start_sshd(lab, "S", "server", work, work)
        lab.wait_listen("S", 22)
        client_cfg = work / "ssh_config"
        client_cfg.write_text(CLIENT_CONFIG.format(relay=IP["S_direct"], server=IP["S_direct"],
                                                   key=work / "id_ed25519", cipher=CIPHER, extra=""))
        lab.ping("T", IP["S_direct"], count=3)  # ARP resolved before the capture starts
        dump = start_capture(lab, "server_edge", "S", "eth0", out, snaplen=96)
        time.sleep(0.3)
        for i in range(a.sessions):
            subprocess.run(["ip", "netns", "exec", lab.ns("T"), SW["ssh"], "-F", client_cfg, "server",
                            f"echo exec-{i + 1}"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, check=True)
        time.sleep(0.5)
        lab.stop(dump, signal.SIGINT)
    finally:
        lab.cleanup()
        shutil.rmtree(work, ignore_errors=True)
    log(f"exec: {a.sessions} sessions, one-way {a.delay_ms} ms +-{a.jitter_ms} ms -> {out}")
    return 0


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "exec":
        return exec_main(sys.argv[2:])
    if len(sys.argv) > 1 and sys.argv[1] == "_bridge":
        return bridge_main(sys.argv[2:])
    if len(sys.argv) > 1 and sys.argv[1] == "_ping":
        return ping_main(sys.argv[2:])
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scenario", default="all", help=f"comma list of {', '.join(SCENARIOS)} or 'all'")
    p.add_argument("--setting", default="all",
                   help=f"comma list of {', '.join(list(SETTINGS) + list(EXTRA_SETTINGS))} or 'all' "
                        f"(= {', '.join(SETTINGS)})")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="output directory (default: pcaps/lab in the repo)")
    p.add_argument("--quick", action="store_true", help="first setting only (unless --setting) and a shorter command")
    p.add_argument("--seed", type=int, default=1, help="seed for typing gaps and jitter (default 1)")
    p.add_argument("--typing", choices=list(TYPING), default="normal",
                   help="typing profile: normal (0.12-0.35 s between keys) or fast (0.100-0.125 s, 8-10 keys/s; "
                        "sets named ...-fast); think pauses before each line are the same (0.45-0.9 s)")
    p.add_argument("--no-check", action="store_true", help="do not check the captures with tshark")
    p.add_argument("--retries", type=int, default=2,
                   help="run a set again when it fails or its check is not ok (default 2)")
    p.add_argument("--keep-work", action="store_true", help="keep the temporary work directory (configs, logs)")
    p.add_argument("--openssh-prefix", metavar="DIR",
                   help="use the OpenSSH installed under DIR (DIR/bin/ssh, DIR/sbin/sshd) for the client and every "
                        "sshd instead of Debian's, e.g. /opt/openssh-10 (keystroke-timing obfuscation)")
    p.add_argument("--obscure-keystroke-timing", default="yes", metavar="yes|no|interval:MS",
                   help="client ObscureKeystrokeTiming with --openssh-prefix (default yes = interval:20)")
    p.add_argument("--openssh-source", metavar="TEXT",
                   help="where the --openssh-prefix build came from, recorded as software.openssh_source")
    p.add_argument("--set-prefix", default=None,
                   help="prefix of the set directory names (default: none; with --openssh-prefix 'obfuscated-', "
                        "or 'openssh-prefix-' when obfuscation is off), so existing sets are never overwritten")
    p.add_argument("--idle-after-line", type=float, default=None, metavar="S",
                   help="extra idle seconds before each line after the first (default 0; 3.5 with obfuscation, "
                        "so each line's chaff burst ends before the next line)")
    args = p.parse_args()

    if os.geteuid() != 0:
        sys.exit("run-lab.py must run as root (network namespaces, raw sockets, tcpdump)")
    if args.openssh_prefix:
        pre = Path(args.openssh_prefix).resolve()
        SW["prefix"] = str(pre)
        SW["ssh"] = str(pre / "bin" / "ssh")
        SW["sshd"] = str(pre / "sbin" / "sshd")  # absolute: sshd re-executes itself and its helpers
        for f in (SW["ssh"], SW["sshd"]):
            if not os.access(f, os.X_OK):
                sys.exit(f"--openssh-prefix: {f} is missing or not executable")
        v = args.obscure_keystroke_timing
        if not (v in ("yes", "no") or (v.startswith("interval:") and v[9:].isdigit() and int(v[9:]) > 0)):
            sys.exit("--obscure-keystroke-timing: yes, no or interval:MS")
        SW["obscure"] = v
        SW["source"] = args.openssh_source
    elif args.obscure_keystroke_timing != "yes":
        sys.exit("--obscure-keystroke-timing needs --openssh-prefix (Debian's 9.2p1 has no obfuscation)")
    if args.set_prefix is None:
        args.set_prefix = "" if not SW["prefix"] else "openssh-prefix-" if SW["obscure"] == "no" else "obfuscated-"
    if args.idle_after_line is None:
        args.idle_after_line = 3.5 if SW["obscure"] not in (None, "no") else 0.0
    for tool in ("ip", "ethtool", "tcpdump", SW["ssh"], "ssh-keygen", SW["sshd"], "ss", "socat"):
        if not shutil.which(tool):
            sys.exit(f"missing tool: {tool}")
    if SW["prefix"]:
        check_openssh_build()
    obfuscating = SW["obscure"] not in (None, "no")
    if args.scenario == "all":
        scns = [s for s in SCENARIOS if not (obfuscating and s == "nested")]
    else:
        scns = args.scenario.split(",")
    for s in scns:
        if s not in SCENARIOS:
            sys.exit(f"unknown scenario {s!r}; choose from {SCENARIOS}")
        if s == "nested" and obfuscating:
            # (portfwd is fine: at S's edge, where socat re-segments the stream, chaff_expected is null with a
            # chaff_note; see resegmenting_vantage)
            sys.exit(f"{s} with keystroke-timing obfuscation is not supported: the ssh started in the relay's "
                     "shell chaffs and re-quantises keys too, and the chaff analysis does not model two clients")
    if args.setting == "all":
        sets = list(SETTINGS)[:1] if args.quick else list(SETTINGS)
    else:
        sets = args.setting.split(",")
        for s in sets:
            if s not in SETTINGS and s not in EXTRA_SETTINGS:
                sys.exit(f"unknown setting {s!r}; choose from {list(SETTINGS) + list(EXTRA_SETTINGS)}")
    outroot = Path(args.out).resolve()
    outroot.mkdir(parents=True, exist_ok=True)
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege-separation directory (Debian's)
    # The typist, ssh, sshd, socat and tcpdump inherit this: keystrokes and echoes keep their timing when the
    # machine is busy (a build at nice 0 delayed ssh by up to 160 ms). The bridges run SCHED_FIFO.
    os.setpriority(os.PRIO_PROCESS, 0, -15)

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    keydir = Path(tempfile.mkdtemp(prefix="echoloc-lab-keys-"))
    t0 = time.monotonic()
    failures = []
    sfx = TYPING[args.typing]["suffix"]
    try:
        make_keys(keydir)
        for scn in scns:
            for st in sets:
                for attempt in range(1 + args.retries):
                    try:
                        truth = run_one(scn, st, SETTINGS.get(st) or EXTRA_SETTINGS[st], args, keydir, outroot)
                    except LabError as e:
                        log(f"{args.set_prefix}{scn}-{st}{sfx}: FAILED (attempt {attempt + 1}): {e}")
                        problem = "failed"
                        continue
                    if args.no_check or truth["check"].get("all_ok", True):
                        problem = None
                        break
                    problem = "check not ok"
                    log(f"{args.set_prefix}{scn}-{st}{sfx}: check not ok (attempt {attempt + 1}): "
                        f"{'; '.join(truth['check']['failed'])}")
                if problem:
                    failures.append(f"{args.set_prefix}{scn}-{st}{sfx} ({problem})")
        write_index(outroot)
    finally:
        shutil.rmtree(keydir, ignore_errors=True)
    log(f"done in {time.monotonic() - t0:.1f} s; output in {outroot}"
        + (f"; FAILED: {', '.join(failures)}" if failures else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
