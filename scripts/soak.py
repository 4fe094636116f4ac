#!/usr/bin/env python3
"""Soak test of `echoloc live` (outside CI; root: it makes network namespaces).

A veth pair joins two namespaces made for the run: tcpreplay sends a mix of
the project's captures into one end, in a loop, at a fixed rate; echoloc
captures the other end. The mix: interactive sessions (the SSH lab's, the
RDP lab's and the VPN lab's captures), bulk transfers, a flood of spoofed
SYNs and one-packet UDP flows, and malformed frames (cut IP headers, lengths
that lie, garbage). Every FLAP seconds the sensor's interface goes down for
3 s and comes back (echoloc reopens it). /metrics is scraped every second.

At the end echoloc gets SIGTERM; the script checks that every session's
record was written once (no uid twice; as many records as sessions ended
and open once the traffic stopped, less the flows folded into others),
and prints, per window of the run, resident memory, open sessions, series in
the exposition, packets, kernel drops. The samples go to OUT/soak.csv.

    scripts/soak.py [--minutes 30] [--pps 20000] [--flap 300] [--out DIR] [--bin target/release/echoloc]
"""

import argparse
import json
import os
import random
import signal
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GEN, SEN = "echoloc-soak-gen", "echoloc-soak-sensor"


def sh(*args, check=True, **kw):
    return subprocess.run(list(args), check=check, **kw)


def in_ns(ns, *args, **kw):
    return sh("ip", "netns", "exec", ns, *args, **kw)


def write_pcap(path, frames):
    """frames: (ts seconds float, bytes) as Ethernet frames."""
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for ts, data in frames:
            sec = int(ts)
            usec = int((ts - sec) * 1e6)
            f.write(struct.pack("<IIII", sec, usec, len(data), len(data)))
            f.write(data)


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ipv4(src, dst, proto, l4, total=None):
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total or 20 + len(l4), 0, 0x4000, 64, proto, 0, src, dst)
    h = h[:10] + struct.pack("!H", csum(h)) + h[12:]
    return h + l4


def eth(ip):
    return b"\x02\0\0\0\0\x02" + b"\x02\0\0\0\0\x01" + b"\x08\x00" + ip


def flood_and_malformed(path, n, rnd):
    """n spoofed SYNs to a few servers and one-packet UDP flows, with a
    malformed frame every 50 packets."""
    frames = []
    t = 1_767_225_600.0
    for i in range(n):
        t += 0.0001
        src = bytes([198, 18, rnd.randrange(256), rnd.randrange(1, 255)])
        dst = bytes([203, 0, 113, rnd.randrange(1, 20)])
        sport = rnd.randrange(1024, 65535)
        if i % 50 == 49:
            kind = i // 50 % 3
            if kind == 0:  # an IP header cut short
                data = eth(ipv4(src, dst, 6, b"")[:12])
            elif kind == 1:  # a total length larger than the frame
                data = eth(ipv4(src, dst, 6, b"\0" * 20, total=1400))
            else:  # garbage after a valid Ethernet header
                data = eth(bytes(rnd.randrange(256) for _ in range(40)))
        elif i % 4 == 0:
            udp = struct.pack("!HHHH", sport, rnd.choice([53, 123, 51820, 4500]), 8 + 24, 0) + bytes(24)
            data = eth(ipv4(src, dst, 17, udp))
        else:
            tcp = struct.pack("!HHIIBBHHH", sport, rnd.choice([22, 3389, 443]), rnd.randrange(2**32), 0, 5 << 4, 0x02, 64240, 0, 0)
            data = eth(ipv4(src, dst, 6, tcp))
        frames.append((t, data))
    write_pcap(path, frames)


def mix(tmp):
    """The captures tcpreplay loops over (Ethernet only: tcpreplay sends them as they are)."""
    files = []
    for pattern in ["lab/*/server-edge.pcap", "lab/*/typist-edge.pcap", "rdp/*/server-edge.pcap", "vpn/*/outer.pcap", "messy/**/*.pcap"]:
        for p in sorted((ROOT / "pcaps").glob(pattern)):
            with open(p, "rb") as f:
                head = f.read(24)
            if len(head) == 24 and struct.unpack("<I", head[20:24])[0] == 1:
                files.append(str(p))
    flood = Path(tmp) / "flood.pcap"
    flood_and_malformed(flood, 20_000, random.Random(7))
    files.append(str(flood))
    return files


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
        return r.read().decode()


def metric(text, name):
    total = None
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total = (total or 0) + float(line.rsplit(" ", 1)[1])
    return total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--pps", type=int, default=20000)
    ap.add_argument("--flap", type=int, default=300)
    ap.add_argument("--out", default="soak-out")
    ap.add_argument("--bin", default=str(ROOT / "target/release/echoloc"))
    ap.add_argument("--sensor-args", default="--max-sessions 20000", help="more flags for echoloc live")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    if a.minutes * 60 < 1:
        sys.exit("--minutes too short")
    port = 19617

    for ns in (GEN, SEN):
        sh("ip", "netns", "del", ns, check=False, stderr=subprocess.DEVNULL)
        sh("ip", "netns", "add", ns)
    sh("ip", "link", "add", "soakg0", "netns", GEN, "type", "veth", "peer", "name", "soaks0", "netns", SEN)
    for ns, dev in ((GEN, "soakg0"), (SEN, "soaks0")):
        in_ns(ns, "ip", "link", "set", "lo", "up")
        in_ns(ns, "ip", "link", "set", dev, "up")

    tmp = tempfile.mkdtemp(prefix="echoloc-soak-")
    files = mix(tmp)
    records = out / "records.jsonl"
    records.unlink(missing_ok=True)
    log = open(out / "echoloc.log", "w")
    sensor = subprocess.Popen(
        ["ip", "netns", "exec", SEN, a.bin, "live", "--interface", "soaks0", "--listen", f"127.0.0.1:{port}",
         "--output", str(records), "--log-format", "json", *a.sensor_args.split()],
        stdout=subprocess.DEVNULL, stderr=log)
    time.sleep(1.0)
    gen = subprocess.Popen(["ip", "netns", "exec", GEN, "tcpreplay", "-i", "soakg0", "-q", f"--pps={a.pps}", "--loop=0", *files],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    print(f"soak: {len(files)} captures looped at {a.pps} packets/s for {a.minutes} min; flap every {a.flap} s", flush=True)

    samples = []
    start = time.time()
    next_flap = start + a.flap
    end = start + a.minutes * 60
    pid = sensor.pid  # `ip netns exec` execs echoloc
    try:
        while time.time() < end:
            t = time.time()
            if t >= next_flap:
                in_ns(SEN, "ip", "link", "set", "soaks0", "down")
                time.sleep(3)
                in_ns(SEN, "ip", "link", "set", "soaks0", "up")
                next_flap += a.flap
            try:
                text = in_ns(SEN, "python3", "-c", f"import urllib.request;print(urllib.request.urlopen('http://127.0.0.1:{port}/metrics',timeout=2).read().decode())",
                             capture_output=True, text=True).stdout
            except subprocess.CalledProcessError:
                text = ""
            rss = None
            if pid:
                try:
                    for line in open(f"/proc/{pid}/status"):
                        if line.startswith("VmRSS:"):
                            rss = int(line.split()[1]) / 1024
                except OSError:
                    pass
            series = sum(1 for l in text.splitlines() if l and not l.startswith("#"))
            samples.append({
                "t": round(t - start, 1),
                "rss_mib": rss,
                "sessions_active": metric(text, "echoloc_sessions_active"),
                "series": series,
                "packets": metric(text, "echoloc_packets_total"),
                "received": metric(text, "echoloc_capture_received_packets_total"),
                "kernel_drops": metric(text, 'echoloc_capture_dropped_packets_total{interface="soaks0",where="kernel"}'),
                "ended": metric(text, "echoloc_sessions_ended_total"),
            })
            time.sleep(max(0.0, 1.0 - (time.time() - t)))
    finally:
        gen.send_signal(signal.SIGINT)
        gen.wait(timeout=10)
        time.sleep(2)
        final = in_ns(SEN, "python3", "-c", f"import urllib.request;print(urllib.request.urlopen('http://127.0.0.1:{port}/metrics',timeout=2).read().decode())",
                      capture_output=True, text=True, check=False).stdout
        sensor.send_signal(signal.SIGTERM)
        sensor.wait(timeout=30)
        for ns in (GEN, SEN):
            sh("ip", "netns", "del", ns, check=False)

    with open(out / "soak.csv", "w") as f:
        keys = list(samples[0].keys())
        f.write(",".join(keys) + "\n")
        for s in samples:
            f.write(",".join("" if s[k] is None else str(s[k]) for k in keys) + "\n")

    uids = {}
    lines = 0
    folded = 0  # flows folded into another session's record (no record of their own)
    for line in open(records):
        lines += 1
        r = json.loads(line)
        uids[r["uid"]] = uids.get(r["uid"], 0) + 1
        m = r.get("mptcp") or {}
        folded += max(0, len(m.get("subflows") or []) - 1) + (m.get("subflows_dropped") or 0)
        for k in ("rdp", "tunnel"):
            o = r.get(k) or {}
            folded += len(o.get("linked_flows") or []) + (o.get("linked_flows_dropped") or 0)
    twice = sum(1 for c in uids.values() if c > 1)
    # After the traffic stopped: the sessions ended so far and those open
    # end by the shutdown at the latest, each with one record, but for the
    # flows folded into another's record.
    ended = metric(final, "echoloc_sessions_ended_total") or 0
    active = metric(final, "echoloc_sessions_active") or 0
    print(f"records: {lines}, distinct uids: {len(uids)}, uids written more than once: {twice}")
    print(f"after the traffic stopped: {ended:.0f} sessions ended, {active:.0f} open; {folded} flows folded into others' records")

    window = max(1, len(samples) // 10)
    print(f"\n| minutes | RSS MiB | open sessions | series | packets/s | kernel drops |")
    print("|---|---|---|---|---|---|")
    for i in range(0, len(samples), window):
        w = [s for s in samples[i:i + window] if s["packets"] is not None]
        if not w:
            continue
        def rng(k, fmt="{:.0f}"):
            v = [s[k] for s in w if s[k] is not None]
            return f"{fmt.format(min(v))}–{fmt.format(max(v))}" if v else "n/a"
        dt = w[-1]["t"] - w[0]["t"]
        pps = (w[-1]["packets"] - w[0]["packets"]) / dt if dt > 0 else 0
        print(f"| {w[0]['t'] / 60:.0f}–{w[-1]['t'] / 60:.0f} | {rng('rss_mib', '{:.1f}')} | {rng('sessions_active')} | "
              f"{rng('series')} | {pps:.0f} | {rng('kernel_drops')} |")
    ok = twice == 0 and round(ended + active) - folded <= lines <= round(ended + active)
    print("\nsoak:", "every session's record written once" if ok else "RECORDS DO NOT ADD UP")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
