#!/usr/bin/env python3
"""Ground-truth VPN lab for echoloc: a remote worker's laptop L reaches an SSH server S behind a VPN gateway G
through a real tunnel (WireGuard, OpenVPN over UDP or TCP, IPsec IKEv2 with ESP in UDP, AnyConnect by ocserv and
openconnect), with the outer link L --d1-- G delayed by the lab's userspace bridge, captured at G's outer interface
(the corporate edge), at the laptop and at G's inside interface, and a truth.json measured from the captures. Run
as root, one lab at a time:

    flock /tmp/echoloc-lab.lock python3 lab/vpn-lab.py                     # the committed matrix -> pcaps/vpn/
    flock /tmp/echoloc-lab.lock python3 lab/vpn-lab.py --tunnel wireguard --scenario typing --setting near
    python3 lab/vpn-lab.py retruth pcaps/vpn/*/                            # truth.json again from the captures

Topology (namespaces; see lab/README.md "VPN lab"):

    [T] --d0-- L --d1-- G --d2-- S        T only in the relay scenario (T ssh -> L:2222, socat on L -> S:22)

Scenarios: typing (ssh from L to S, ~60 keys), bulk (~1 MB over ssh in ~15 s, nobody types), idle (the tunnel
up, nothing sent through it), relay (the typist in T beyond the laptop). Settings: near (d1 10 ms), far (100 ms),
jitter (20 +- 3 ms). Internal modes: run-lab.py's `_bridge` and `_ping`.
"""

import argparse
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lab_common import IP, REPO, LabError, log  # noqa: E402
from lab_net import Lab, build_line, start_bridge, start_capture  # noqa: E402
from lab_ssh import CLIENT_CONFIG, SHELL_RC, make_keys, start_sshd  # noqa: E402
from lab_typist import Typist  # noqa: E402
from lab_vpn_truth import truth_for  # noqa: E402
import lab_vpn_tunnels as tunnels  # noqa: E402

DEFAULT_OUT = REPO / "pcaps" / "vpn"
SNAPLEN = 128
RT = 50  # SCHED_FIFO priority of bridges and tcpdump (others compile on the machine)
TUNNELS = ["wireguard", "openvpn-udp", "openvpn-tcp", "ipsec", "anyconnect"]
SCENARIOS = ["typing", "bulk", "idle", "relay"]
SETTINGS = {
    "near": {"d1_ms": 10.0, "jitter_ms": 0.0},
    "far": {"d1_ms": 100.0, "jitter_ms": 0.0},
    "jitter": {"d1_ms": 20.0, "jitter_ms": 3.0},
}
D2_MS, D0_MS = 1.0, 40.0
LINES = ["ls /etc | wc -l", "echo hello vpn", "uname -r", "date", "id -u", "whoami", "exit"]  # 56 keys + 7 Enter
GAP_S, THINK_S = (0.15, 0.40), (0.6, 1.0)
BULK = "for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15; do head -c 65536 /dev/zero; sleep 1; done"
PROMPT = "server$ "


def matrix():
    """The committed sets: every tunnel x typing near/far/jitter, bulk near, idle near, relay near."""
    return [(t, s, st) for t in TUNNELS for s, st in (("typing", "near"), ("typing", "far"), ("typing", "jitter"),
                                                        ("bulk", "near"), ("idle", "near"), ("relay", "near"))]


def run_one(tunnel, scn, setting_name, args):
    st = SETTINGS[setting_name]
    d1, jit = st["d1_ms"], st["jitter_ms"]
    name = f"{tunnel}-{scn}-{setting_name}"
    out = args.out / name
    out.mkdir(parents=True, exist_ok=True)
    for f in out.iterdir():
        if f.suffix == ".pcap" or f.name == "truth.json":
            f.unlink()
    work = Path(tempfile.mkdtemp(prefix=f"echoloc-vpn-{name}-"))
    seed = zlib.crc32(f"{args.seed}:{name}".encode())
    lab = Lab()
    typist = None
    log(f"{name}: building")
    try:
        links, l_ip, s_ip = build_line(lab, "relay", d1, D2_MS, roles=("L", "G", "S"))
        # the bridges' links: outer L--G (d1, jitter), inside G--S (d2, no jitter), in the relay T--L (d0)
        jitters = [jit, 0.0]
        if scn == "relay":
            lab.add_ns("T")
            lab.veth("T", "eth0", "B", "t1")
            lab.veth("L", "eth1", "B", "l1")
            lab.addr("T", "eth0", f"{tunnels.LAN_T}/25")
            lab.addr("L", "eth1", f"{tunnels.LAN_L}/25")
            links.append(("t1", "l1", D0_MS))
            jitters.append(0.0)
        bridges = [start_bridge(lab, i, a, b, d, jitters[i], seed + i, work, rt_prio=RT)
                   for i, (a, b, d) in enumerate(links)]
        keydir = work / "keys"
        keydir.mkdir()
        make_keys(keydir)
        client_cfg = work / "ssh_config"
        client_cfg.write_text(CLIENT_CONFIG.format(relay=tunnels.LAN_L, server=s_ip, key=keydir / "id_ed25519",
                                                   cipher="chacha20-poly1305@openssh.com", extra=""))
        rc = work / "rc-server"
        rc.write_text(SHELL_RC.format(host="server", prompt=PROMPT, client_config=client_cfg, ssh="ssh"))
        # the typist gets the lab's shell (fixed prompt); the bulk transfer runs its command as given
        start_sshd(lab, "S", "server", keydir, work, force_command="" if scn == "bulk" else
                   f"ForceCommand exec /bin/bash --noprofile --rcfile {rc} -i\n")
        lab.wait_listen("S", 22)
        # ARP on every link before the captures (the first probe waits for it)
        pings = {"L->G outer": lab.ping("L", IP["R_t"]), "G->S inside": lab.ping("G", s_ip)}
        if scn == "relay":
            pings["T->L"] = lab.ping("T", tunnels.LAN_L)
        caps = {"outer.pcap": ("G", "eth0"), "laptop.pcap": ("L", "eth0"), "inner.pcap": ("G", "eth1")}
        if scn == "relay":
            caps.update({"typist.pcap": ("T", "eth0"), "laptop-lan.pcap": ("L", "eth1")})
        dumps = [start_capture(lab, f, role, ifn, out / f, SNAPLEN, rt_prio=RT) for f, (role, ifn) in caps.items()]
        time.sleep(0.3)
        tun = tunnels.up(tunnel, lab, work)
        # the first packets through the tunnel (WireGuard: the laptop's own first handshake)
        pings["L->S through the tunnel"] = lab.ping("L", s_ip, count=5)
        if scn == "relay":
            lab.spawn("socat", "L", ["socat", f"TCP-LISTEN:2222,bind={tunnels.LAN_L},reuseaddr,fork,nodelay",
                                     f"TCP:{s_ip}:22"], stderr=open(work / "socat.log", "wb"))
            lab.wait_listen("L", 2222)
        keys, t_session = [], None
        time.sleep(1.0)
        if scn in ("typing", "relay"):
            ns, target = ("T", ["-p", "2222", "relay"]) if scn == "relay" else ("L", ["server"])
            typist = Typist(["ip", "netns", "exec", lab.ns(ns), "ssh", "-F", str(client_cfg), *target],
                            random.Random(seed), gap=GAP_S, think=THINK_S, timeout=30 + 0.6 * d1)
            t_session = time.time_ns()
            typist.expect(PROMPT)
            for i, line in enumerate(LINES):
                tun.poke()  # between lines: no keystroke in flight while the gateway re-keys
                typist.type_line(line, expect=None if line == "exit" else PROMPT)
            keys = typist.keys
        elif scn == "bulk":
            t_session = time.time_ns()
            end = time.monotonic() + 17
            p = lab.spawn("ssh-bulk", "L", ["ssh", "-F", client_cfg, "server", BULK],
                          stdout=open(work / "bulk.out", "wb"), stderr=open(work / "bulk.err", "wb"))
            while p.poll() is None and time.monotonic() < end + 30:
                if time.monotonic() < end:
                    time.sleep(5.0)
                    tun.poke()
                else:
                    time.sleep(0.5)
            size = (work / "bulk.out").stat().st_size
            if size != 15 * 65536:
                raise LabError(f"bulk: {size} bytes received: {(work / 'bulk.err').read_text()[-300:]}")
        else:  # idle
            t_session = time.time_ns()
            for _ in range(args.idle_s // 12):  # the laptop's keepalives (10 s) come between the pokes
                time.sleep(12.0)
                tun.poke()
            time.sleep(args.idle_s % 12)
        time.sleep(1.0 + 4 * d1 / 1000)
        for d in dumps:
            lab.stop(d)
        for b, _ in bridges:
            lab.stop(b)
        bstats = [json.loads(s.read_text()) for _, s in bridges if s.exists()]
        (out / "keys.json").write_text(json.dumps({"keys": keys, "pokes": tun.pokes}, indent=0) + "\n")
        meta = {"tunnel": tunnel, "scenario": scn, "setting": setting_name, "seed": args.seed,
                "configured_delays_ms": {"d1_outer_one_way": d1, "d1_jitter": jit, "d2_inside_one_way": D2_MS,
                                         "d0_typist_laptop_one_way": D0_MS if scn == "relay" else None},
                "tunnel_info": tun.info, "session_start_ns": t_session, "captures": caps,
                "pings_before_and_at_start": pings, "bridges": bstats,
                "lines": LINES if keys else [], "typing_gap_s": GAP_S, "think_s": THINK_S,
                "bulk_command": BULK if scn == "bulk" else None}
        (out / "meta.json").write_text(json.dumps(meta, indent=1, default=str) + "\n")
        truth = truth_for(out)
        log(f"{name}: keys {truth['keys_typed']}, laptop_rtt {truth['laptop_rtt_ms']} ms, "
            f"typist_rtt {truth.get('typist_rtt_ms')} ms, sizes {truth.get('outer_size_classes')}")
        return truth
    finally:
        if typist:
            typist.close()
        lab.cleanup()
        if not args.keep_work:
            shutil.rmtree(work, ignore_errors=True)
        else:
            log(f"work kept in {work}")


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "retruth":
        for d in sys.argv[2:]:
            t = truth_for(Path(d))
            log(f"{d}: laptop_rtt {t['laptop_rtt_ms']} ms, typist_rtt {t.get('typist_rtt_ms')} ms")
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tunnel", help=f"one or more of {','.join(TUNNELS)} (default: the whole matrix)")
    ap.add_argument("--scenario", default="typing", help=",".join(SCENARIOS))
    ap.add_argument("--setting", default="near", help=",".join(SETTINGS))
    ap.add_argument("--all", action="store_true", help="the committed matrix (default without --tunnel)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--idle-s", type=int, default=40)
    ap.add_argument("--keep-work", action="store_true")
    a = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root (namespaces, tunnels)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # SIGTERM ends a run through its cleanup
    if a.all or not a.tunnel:
        sets = matrix()
    else:
        sets = [(t, s, st) for t in a.tunnel.split(",") for s in a.scenario.split(",") for st in a.setting.split(",")]
    failed = []
    for t, s, st in sets:
        try:
            run_one(t, s, st, a)
        except LabError as e:
            log(f"{t}-{s}-{st}: FAILED: {e}")
            failed.append(f"{t}-{s}-{st}")
    if failed:
        raise SystemExit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
