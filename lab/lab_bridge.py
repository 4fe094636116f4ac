"""Helper modes the lab starts inside namespaces: the userspace delaying bridge (`run-lab.py _bridge`, AF_PACKET;
the kernel here has no netem) and ICMP echo (`run-lab.py _ping`)."""

import argparse
import ctypes
import heapq
import json
import os
import random
import select
import signal
import socket
import struct
import time
from pathlib import Path

ETH_P_ALL = 0x0003
SPIN_NS = 400_000  # the bridge polls for the last 0.4 ms before a frame is due


class Stop(Exception):
    pass


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
    p.add_argument("--rt-priority", type=int, default=20)
    a = p.parse_args(argv)

    realtime = True
    try:  # keep the delay exact when the machine is busy (the bridge sleeps almost all the time)
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(a.rt_priority))
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
