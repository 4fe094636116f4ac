"""The delay settings, typing profiles and scenarios, and run_one: one scenario at one setting end to end
(topology, bridges, sshd/socat, pings, captures, the typist, truth.json and its check)."""

import json
import random
import shutil
import signal
import tempfile
import time
import zlib
from pathlib import Path

from lab_chaff import analyze_chaff, parse_client_chaff_log
from lab_check import check_capture_set
from lab_common import CIPHER, FWD_PORT, IP, SCHEMA, SOCAT_CONNECT, SOCAT_LISTEN, SW, LabError, log, r3, rfc3339_ns
from lab_net import Lab, build_line, start_bridge, start_capture
from lab_ssh import CLIENT_CONFIG, SHELL_RC, software_truth, start_sshd
from lab_truth import expected_at, positions, ttl_expectation
from lab_typist import Typist

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


# --------------------------------------------------------------------------------------------------------------
# One scenario at one setting
# --------------------------------------------------------------------------------------------------------------

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
