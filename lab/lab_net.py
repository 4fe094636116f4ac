"""Namespaces, links and processes: Lab (one run's namespaces and processes, removed by cleanup()), build_line
(the line T --d1-- [R] --d2-- S with its bridges' veth ends in B), start_bridge (a delaying bridge, run-lab.py
_bridge) and start_capture (tcpdump)."""

import json
import os
import select
import signal
import subprocess
import sys
import time

from lab_common import IP, RUN_LAB, LabError


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
        out = self.run(sys.executable, RUN_LAB, "_ping", dst, "--count", count, ns=role)
        return json.loads(out)


def build_line(lab, middle, d1, d2, roles=("T", "R", "S")):
    """The line T --d1-- middle --d2-- S in namespaces T, B (the bridges), S and R. `middle`: None (direct: T and S
    on one L2 segment through both bridges, joined by a veth pair inside B), "relay" (a host R with an address on
    each link) or "router" (the same R forwarding IP, with routes through it). `roles` renames the namespaces T, R
    and S (vpn-lab.py: laptop L, gateway G, server S); the addresses stay those of IP["T"], IP["R_t"]... Returns
    the bridges' links [(if_a, if_b, one-way delay)], the typist's and the server's address."""
    T, R, S = roles
    for role in (T, "B", S) + ((R,) if middle else ()):
        lab.add_ns(role)
    if not middle:
        lab.veth(T, "eth0", "B", "t0")
        lab.veth("B", "m0", "B", "m1")  # joins the two bridges: T -[d1]- m0=m1 -[d2]- S
        lab.veth(S, "eth0", "B", "s0")
        lab.addr(T, "eth0", IP["T_direct"] + "/24")
        lab.addr(S, "eth0", IP["S_direct"] + "/24")
        return [("t0", "m0", d1), ("m1", "s0", d2)], IP["T_direct"], IP["S_direct"]
    lab.veth(T, "eth0", "B", "t0")
    lab.veth(R, "eth0", "B", "r0")
    lab.veth(R, "eth1", "B", "r1")
    lab.veth(S, "eth0", "B", "s0")
    lab.addr(T, "eth0", IP["T"] + "/24")
    lab.addr(R, "eth0", IP["R_t"] + "/24")
    lab.addr(R, "eth1", IP["R_s"] + "/24")
    lab.addr(S, "eth0", IP["S"] + "/24")
    if middle == "router":
        lab.run("sysctl", "-q", "-w", "net.ipv4.ip_forward=1", ns=R)
        lab.run("ip", "route", "add", "default", "via", IP["R_t"], ns=T)
        lab.run("ip", "route", "add", "default", "via", IP["R_s"], ns=S)
    return [("t0", "r0", d1), ("r1", "s0", d2)], IP["T"], IP["S"]


def start_bridge(lab, i, ia, ib, delay_ms, jitter_ms, seed, work, rt_prio=None):
    """A delaying bridge between interfaces ia and ib of namespace B; returns (process, stats file). With rt_prio
    it runs at that SCHED_FIFO priority (`chrt -f`) instead of its own default (20)."""
    stats = work / f"bridge{i}.json"
    cmd = [sys.executable, RUN_LAB, "_bridge", "--a", ia, "--b", ib,
           "--delay-ms", delay_ms, "--jitter-ms", jitter_ms, "--seed", seed, "--stats", stats]
    if rt_prio:
        cmd = ["chrt", "-f", rt_prio] + cmd + ["--rt-priority", rt_prio]
    p = lab.spawn(f"bridge{i}", "B", cmd, stdout=subprocess.PIPE)
    line = p.stdout.readline().decode().strip()
    if line != "ready":
        raise LabError(f"bridge {ia}<->{ib} did not start")
    return p, stats


def start_capture(lab, vname, role, ifn, file, snaplen=None, rt_prio=None):
    """tcpdump on interface ifn of a namespace, returned once it listens (at SCHED_FIFO rt_prio if given)."""
    p = lab.spawn(f"tcpdump-{vname}", role,
                  (["chrt", "-f", rt_prio] if rt_prio else [])
                  + ["tcpdump", "-i", ifn, "-w", file, "-U", "--immediate-mode", "--time-stamp-precision=nano",
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
