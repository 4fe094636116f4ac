#!/usr/bin/env python3
"""Live capture rate without loss (outside CI; root: it makes network namespaces).

Two namespaces joined by a veth pair (echoloc-rate-gen, echoloc-rate-sensor;
no addresses). `echoloc live` captures the sensor's end, pinned to one core
(taskset, --sensor-cpu, default 1). A generator pinned to another core
(--gen-cpu, default 0) sends a capture's Ethernet frames into the other end
at a fixed rate: scripts/pcap-blast.c (built here with gcc), one AF_PACKET
socket, sendmmsg(2) in batches of 64, the queueing discipline bypassed, the
file looped, its timestamps ignored. For each rate (packets/s; `max`: as fast
as the generator goes) and each run it sends --packets frames or --seconds of
them at that rate, whichever is more (--max-packets at max), then reads
from /metrics (inside the sensor's namespace) how many libpcap received and
how many the kernel dropped (echoloc_capture_received_packets_total,
echoloc_capture_dropped_packets_total{where="kernel"}), with the rate the
generator achieved, the frames the veth delivered, and the sensor's CPU.

Each --setting is `LABEL=FLAGS` (flags for `echoloc live`); the sensor is
started afresh for each. A table per setting, then the highest rate offered
at which every run was loss-free, per setting.

The generator may be slower than the sensor. --sensor-cpu-quota PCT[,PCT...]
then makes the sensor the bottleneck: it runs in a cgroup (v1 cpu
controller, /sys/fs/cgroup/cpu/echoloc-rate, removed at the end) whose CFS
quota is PCT % of one core (cpu.cfs_quota_us over a 100 ms period), each
setting once under each quota (0: no quota). The summary then divides the
loss-free rate by the quota: the rate a whole core would take if the
sensor's work scaled linearly with its CPU time (it does not quite: the CPU
a packet falls as the rate rises, so a small quota underestimates a core). After each run the script
waits until the sensor has read what the ring kept (echoloc_packets_total),
so a run does not start with the last one's backlog; CPU is counted until
then, and ns/packet is that CPU over the packets read. The ring holds
hundreds of thousands of small packets: a run must last long enough
(--seconds) for a rate a little above the sensor's to overflow it. read/s:
the packets the sensor read while the generator sent, a second; when it
drops, its own rate (less up to a second's worth: the engine's counters
reach /metrics once a second).

    scripts/live-rate.py --pcap target/bench-data/replay-v2-400000p-5000f.pcap \\
        --setting 'default=' --setting 'buffer 128=--buffer-mib 128' \\
        [--rates 100k,200k,300k,400k,600k,800k,1M,max] [--runs 3] [--packets 400000] [--seconds 4] \\
        [--bin target/release/echoloc] [--json OUT.json] [--sensor-cpu-quota 5,10] [--sensor-nice -5]

The capture: `cargo bench --bench replay` writes target/bench-data/ (400,000
header-only TCP packets over 5,000 concurrent connections with
ECHOLOC_BENCH_PACKETS=400000).
"""

import argparse
import atexit
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GEN, SEN = "echoloc-rate-gen", "echoloc-rate-sensor"
GEN_IF, SEN_IF = "rateg0", "rates0"
PORT = 19717
CLK = os.sysconf("SC_CLK_TCK")
CGROUP = Path("/sys/fs/cgroup/cpu/echoloc-rate")
CFS_PERIOD_US = 100_000


def sh(*args, check=True, **kw):
    return subprocess.run(list(args), check=check, **kw)


def in_ns(ns, *args, **kw):
    return sh("ip", "netns", "exec", ns, *args, **kw)


def parse_rate(s):
    s = s.strip().lower()
    if s == "max":
        return 0
    mult = 1
    if s.endswith("k"):
        s, mult = s[:-1], 1000
    elif s.endswith("m"):
        s, mult = s[:-1], 1_000_000
    return int(float(s) * mult)


def fmt_rate(r):
    if r == 0:
        return "max"
    if r >= 1_000_000 and r % 100_000 == 0:
        return f"{r / 1e6:g}M"
    if r % 1000 == 0:
        return f"{r // 1000}k"
    return str(r)


def scrape():
    out = in_ns(SEN, "curl", "-s", "--max-time", "2", f"http://127.0.0.1:{PORT}/metrics",
                capture_output=True, text=True, check=False).stdout
    return out


def metric(text, name, label=None):
    total = None
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            if label and label not in line:
                continue
            total = (total or 0) + float(line.rsplit(" ", 1)[1])
    return total


def counters():
    t = scrape()
    return (int(metric(t, "echoloc_capture_received_packets_total") or 0),
            int(metric(t, "echoloc_capture_dropped_packets_total", 'where="kernel"') or 0),
            int(metric(t, "echoloc_packets_total") or 0))


def veth_rx():
    p = f"/sys/class/net/{SEN_IF}/statistics/rx_packets"
    return int(in_ns(SEN, "cat", p, capture_output=True, text=True).stdout)


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def cgroup_set(pct):
    """The sensor's cgroup, its quota PCT % of one core (0: none)."""
    if not CGROUP.parent.is_dir() or not (CGROUP.parent / "cpu.cfs_quota_us").exists():
        sys.exit(f"{CGROUP.parent}: no cgroup v1 cpu controller (--sensor-cpu-quota needs one)")
    CGROUP.mkdir(exist_ok=True)
    (CGROUP / "cpu.cfs_period_us").write_text(str(CFS_PERIOD_US))
    (CGROUP / "cpu.cfs_quota_us").write_text(str(round(pct * CFS_PERIOD_US / 100)) if pct else "-1")


def cgroup_throttled():
    """(periods throttled, seconds throttled) of the sensor's cgroup so far."""
    try:
        stat = dict(line.split() for line in (CGROUP / "cpu.stat").read_text().splitlines())
    except OSError:
        return 0, 0.0
    return int(stat.get("nr_throttled", 0)), int(stat.get("throttled_time", 0)) / 1e9


def cgroup_remove():
    if CGROUP.is_dir():
        try:
            CGROUP.rmdir()
        except OSError as e:  # a process still in it
            print(f"live-rate.py: could not remove {CGROUP}: {e}", file=sys.stderr)


def cleanup(state):
    stop_sensor(state)
    cgroup_remove()
    for ns in (GEN, SEN):
        sh("ip", "netns", "del", ns, check=False, stderr=subprocess.DEVNULL)


def setup():
    for ns in (GEN, SEN):
        sh("ip", "netns", "del", ns, check=False, stderr=subprocess.DEVNULL)
        sh("ip", "netns", "add", ns)
    sh("ip", "link", "add", GEN_IF, "netns", GEN, "type", "veth", "peer", "name", SEN_IF, "netns", SEN)
    for ns, dev in ((GEN, GEN_IF), (SEN, SEN_IF)):
        # No IPv6 on the veth: no router solicitations among the counted frames.
        in_ns(ns, "sysctl", "-q", f"net.ipv6.conf.{dev}.disable_ipv6=1", check=False)
        in_ns(ns, "ip", "link", "set", "lo", "up")
        in_ns(ns, "ip", "link", "set", dev, "up")


def start_sensor(a, flags, state, quota=None):
    cmd = []
    if quota is not None:
        # Into the cgroup before echoloc starts, so every thread is in it from
        # the first (and before `ip netns exec`, which mounts the namespace's
        # own /sys). sh, ip, nice and taskset exec what follows: the pid is
        # echoloc's.
        cgroup_set(quota)
        cmd += ["sh", "-c", 'echo $$ > "$0" && exec "$@"', str(CGROUP / "cgroup.procs")]
    cmd += ["ip", "netns", "exec", SEN]
    if a.sensor_nice:
        cmd += ["nice", "-n", str(a.sensor_nice)]
    cmd += ["taskset", "-c", a.sensor_cpu, a.bin, "live", "--interface", SEN_IF, "--listen", f"127.0.0.1:{PORT}",
            *flags]
    log = open(state["tmp"] / "echoloc.log", "a")
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)
    state["sensor"] = p
    for _ in range(100):
        if p.poll() is not None:
            sys.exit(f"echoloc exited ({p.returncode}); see {state['tmp'] / 'echoloc.log'}")
        text = scrape()
        if "echoloc_capture" in text or "echoloc_packets_total" in text:
            break
        time.sleep(0.1)
    time.sleep(1.2)  # the first libpcap counters come with the first tick
    if quota is not None:
        procs = (CGROUP / "cgroup.procs").read_text().split()
        if str(p.pid) not in procs:
            sys.exit(f"echoloc (pid {p.pid}) is not in {CGROUP}")
    return p


def stop_sensor(state):
    p = state.pop("sensor", None)
    if p and p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def one_run(a, state, pid, rate, count=None):
    if count is None:
        count = max(a.packets, int(rate * a.seconds)) if rate else max(a.packets, a.max_packets)
    r0, d0, e0 = counters()
    v0 = veth_rx()
    c0 = cpu_ticks(pid)
    n0, s0 = cgroup_throttled()
    t0 = time.monotonic()
    g = in_ns(GEN, "taskset", "-c", a.gen_cpu, str(state["gen"]), GEN_IF, str(a.pcap), str(count), str(rate),
              capture_output=True, text=True)
    out = dict(kv.split("=") for kv in g.stdout.split())
    sent, achieved = int(out["sent"]), float(out["pps"])
    # What the sensor read while the generator sent: its own rate when it
    # could not keep up (the engine's counters reach /metrics once a second,
    # so up to a second's worth short).
    em = counters()[2]
    delivered = veth_rx() - v0
    # libpcap's counters reach /metrics once a second; wait until they
    # account for every delivered frame (received counts the dropped too).
    deadline = time.monotonic() + 5
    while True:
        time.sleep(0.3)
        r1, d1, e1 = counters()
        if r1 - r0 >= delivered or time.monotonic() > deadline:
            break
    # Then until the sensor has read what the ring kept (a throttled sensor
    # lags), or has read nothing for 2 s.
    deadline = time.monotonic() + a.drain_wait
    last, still = e1, time.monotonic()
    while e1 - e0 < (r1 - r0) - (d1 - d0) and time.monotonic() < deadline:
        time.sleep(0.3)
        r1, d1, e1 = counters()
        if e1 != last:
            last, still = e1, time.monotonic()
        elif time.monotonic() - still > 2:
            break
    wall = time.monotonic() - t0
    cpu = (cpu_ticks(pid) - c0) / CLK
    n1, s1 = cgroup_throttled()
    return {"rate": rate, "sent": sent, "achieved_pps": round(achieved), "delivered": delivered,
            "received": r1 - r0, "kernel_dropped": d1 - d0, "engine_packets": e1 - e0,
            "read_pps": round((em - e0) / max(float(out["seconds"]), 1e-9)),
            "sensor_cpu_s": round(cpu, 2), "ns_per_packet": round(cpu * 1e9 / max(e1 - e0, 1)),
            "throttled_periods": n1 - n0, "throttled_s": round(s1 - s0, 2),
            "send_s": round(float(out["seconds"]), 3), "wall_s": round(wall, 2)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=str(ROOT / "target/release/echoloc"))
    ap.add_argument("--pcap", default=str(ROOT / "target/bench-data/replay-v2-400000p-5000f.pcap"))
    ap.add_argument("--rates", default="100k,200k,300k,400k,600k,800k,1M,max")
    ap.add_argument("--packets", type=int, default=400_000, help="packets a run, at least")
    ap.add_argument("--seconds", type=float, default=4.0,
                    help="a run lasts at least this long at the offered rate (more packets than the ring holds)")
    ap.add_argument("--max-packets", type=int, default=3_000_000, help="packets a run at rate max")
    ap.add_argument("--runs", type=int, default=3, help="runs a rate")
    ap.add_argument("--setting", action="append", default=[], metavar="LABEL=FLAGS",
                    help="a label and flags for echoloc live (repeatable; default: 'default=')")
    ap.add_argument("--gen-cpu", default="0")
    ap.add_argument("--sensor-cpu", default="1")
    ap.add_argument("--stop-after", type=int, default=2,
                    help="next setting after this many rates in a row lost packets in every run")
    ap.add_argument("--warmup", default="100k",
                    help="before the runs, one pass of the capture at this rate, not counted (the sessions' first "
                    "packets and the table's growth); 0: none")
    ap.add_argument("--sensor-cpu-quota", metavar="PCT[,PCT...]",
                    help="run each setting under each of these CPU quotas, %% of one core, in a cgroup (v1 cpu "
                    "controller); 0: no quota")
    ap.add_argument("--sensor-nice", type=int, default=0, help="the sensor's nice value (e.g. -5 on a busy machine)")
    ap.add_argument("--drain-wait", type=float, default=30.0,
                    help="after a run, wait at most this long for the sensor to read what the ring kept")
    ap.add_argument("--json", help="write every run here")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("live-rate.py: run as root (it makes network namespaces)")
    a.pcap = Path(a.pcap).resolve()
    if not a.pcap.exists():
        sys.exit(f"{a.pcap}: no such capture (ECHOLOC_BENCH_PACKETS=400000 cargo bench --bench replay writes one)")
    rates = [parse_rate(r) for r in a.rates.split(",")]
    quotas = [float(q) for q in a.sensor_cpu_quota.split(",")] if a.sensor_cpu_quota else [None]
    if any(q is not None and not 0 <= q <= 100 for q in quotas):
        sys.exit("--sensor-cpu-quota: percentages of one core, 0 to 100")
    settings = []
    for s in a.setting or ["default="]:
        label, _, flags = s.partition("=")
        for q in quotas:
            settings.append((label if q is None else f"{label} @{q:g}% CPU" if q else f"{label} @no quota",
                             flags.split(), q))

    state = {"tmp": Path(tempfile.mkdtemp(prefix="echoloc-rate-"))}
    state["gen"] = state["tmp"] / "pcap-blast"
    sh("gcc", "-O2", "-o", str(state["gen"]), str(ROOT / "scripts/pcap-blast.c"))
    atexit.register(cleanup, state)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    setup()
    print(f"generator on core {a.gen_cpu}, echoloc on core {a.sensor_cpu} (nice {a.sensor_nice}); {a.packets} "
          f"packets a run, {a.runs} runs a rate; {a.pcap.name}; load average {os.getloadavg()[0]:.1f}", flush=True)

    results = []
    for label, flags, quota in settings:
        p = start_sensor(a, flags, state, quota)
        print(f"\n== {label}: echoloc live {' '.join(flags)}; load average {os.getloadavg()[0]:.1f}", flush=True)
        if parse_rate(a.warmup):
            w = one_run(a, state, p.pid, parse_rate(a.warmup), a.packets)
            print(f"   warm-up at {fmt_rate(w['rate'])}: {w['kernel_dropped']:,} of {w['received']:,} dropped "
                  "(not counted)", flush=True)
        print(f"{'offered':>8} {'achieved':>10} {'delivered':>10} {'received':>10} {'kernel drops':>13} "
              f"{'drop %':>7} {'read/s':>9} {'sensor CPU':>10} {'ns/packet':>9} {'throttled':>9}", flush=True)
        lossy_in_a_row = 0
        ceiling = False
        for rate in rates:
            if ceiling and rate != 0:
                continue
            runs = []
            for _ in range(a.runs):
                r = one_run(a, state, p.pid, rate)
                r["setting"] = label
                r["flags"] = " ".join(flags)
                r["cpu_quota_pct"] = quota
                runs.append(r)
                results.append(r)
                cpu_share = r["sensor_cpu_s"] / max(r["send_s"], 1e-9)
                print(f"{fmt_rate(rate):>8} {r['achieved_pps']:>10,} {r['delivered']:>10,} {r['received']:>10,} "
                      f"{r['kernel_dropped']:>13,} {100 * r['kernel_dropped'] / max(r['received'], 1):>6.2f}% "
                      f"{r['read_pps']:>9,} "
                      f"{100 * min(cpu_share, 9.99):>9.0f}% {r['ns_per_packet']:>9,} {r['throttled_s']:>8.1f}s",
                      flush=True)
            if rate and min(r["achieved_pps"] for r in runs) < 0.9 * rate:
                print(f"   the generator reached its ceiling below {fmt_rate(rate)}", flush=True)
                ceiling = True
            if any(r["received"] < r["delivered"] for r in runs):
                print("   libpcap's counters did not account for every frame delivered (a starved sensor?)", flush=True)
            if all(r["kernel_dropped"] > 0 for r in runs):
                lossy_in_a_row += 1
                if lossy_in_a_row >= a.stop_after:
                    break
            else:
                lossy_in_a_row = 0
        rss = rss_mib(p.pid)
        stop_sensor(state)
        if quota is not None:
            cgroup_remove()
        for r in results:
            if r["setting"] == label:
                r["sensor_rss_mib"] = round(rss)
        print(f"   echoloc RSS at the end: {rss:.0f} MiB", flush=True)

    print("\nHighest loss-free rate (every run without a kernel drop, every frame counted), lowest with a drop "
          "in some run:")
    for label, flags, quota in settings:
        mine = [r for r in results if r["setting"] == label]
        best = lossy = None
        for rate in dict.fromkeys(r["rate"] for r in mine):
            runs = [r for r in mine if r["rate"] == rate]
            ach = min(r["achieved_pps"] for r in runs)
            # Loss-free: no drop, and libpcap's counters account for every
            # frame the veth delivered (a starved sensor may not report).
            if all(r["kernel_dropped"] == 0 and r["received"] >= r["delivered"] for r in runs):
                if best is None or ach > best[1]:
                    best = (rate, ach)
            elif lossy is None or ach < lossy[1]:
                lossy = (rate, ach)
        line = f"  {label:<28} "
        line += f"offered {fmt_rate(best[0])}, achieved at least {best[1]:,} packets/s" if best else "none"
        if lossy:
            line += f"; drops from offered {fmt_rate(lossy[0])} (achieved at least {lossy[1]:,})"
        if best and quota:
            # Linear in CPU time: a whole core takes the rate / the quota.
            line += f"; / {quota:g}% = {best[1] * 100 / quota:,.0f} packets/s a core if it scales linearly"
        ns = sorted(r["ns_per_packet"] for r in mine if r["engine_packets"] > 0)
        if ns:
            line += f"; CPU {ns[len(ns) // 2]:,} ns/packet (median), 1e9 / that = {1e9 / ns[len(ns) // 2]:,.0f}/s"
        print(line)
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
