"""Truth, checks, index and the echoloc comparison for lab/messy.py (Python 3.11 standard library; tshark)."""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import messy_pcap as mp
from messy_common import DEFAULT_OUT, HERE, MAX_LATE_FRAMES, SCHEMA, VANTAGES, runlab, vantage_pos
from messy_typist import LabError

IP = runlab.IP
r3 = runlab.r3


SCENARIO_TOOLS = {"vim": ["vim"], "routed-shell": ["vim"], "tmux": ["tmux"], "pager": ["less", "top"],
                  "transfers": ["rsync"], "forward-bulk": ["socat"]}
TOOL_VERSION = {"bash": ["bash", "--version"], "vim": ["vim", "--version"], "tmux": ["tmux", "-V"],
                "less": ["less", "--version"], "top": ["top", "-v"], "rsync": ["rsync", "--version"],
                "socat": ["sh", "-c", "socat -V | grep 'socat version'"]}


def wire_times_of_bulk(run):
    """When each background transfer was on the wire: from its first full-size segment at the sending edge to its
    last one at the receiving edge (the client program itself ends as soon as the data sits in socket buffers, and
    the bridges queue a burst like a router's buffer would)."""
    rows = {v: mp.read_tcp(run.outdir / f) for v, (_, f, _) in VANTAGES.items()}

    def burst(rs, start, c2s):
        big = [r for r in rs if r["len"] >= 1000 and r["t"] >= start and (r["src"] == run.client_ip) == c2s
               and (r["dport"] if c2s else r["sport"]) == 22]
        out = big[:1]
        for r in big[1:]:
            if r["t"] - out[-1]["t"] >= 300_000_000:
                break
            out.append(r)
        return out

    for b in run.bulks:
        c2s = b["direction"] == "client->server"
        snd = burst(rows["typist_edge" if c2s else "server_edge"], b["start_ns"], c2s)
        rcv = burst(rows["server_edge" if c2s else "typist_edge"], b["start_ns"], c2s)
        if not snd or not rcv:
            raise LabError(f"bulk {b['label']}: no full-size segments on the wire")
        b.update(wire_start_ns=snd[0]["t"], wire_end_ns=rcv[-1]["t"], wire_segments=len(snd),
                 wire_tcp_payload_bytes=sum(r["len"] for r in snd),
                 wire_duration_ms=r3((rcv[-1]["t"] - snd[0]["t"]) / 1e6),
                 sending_edge_duration_ms=r3((snd[-1]["t"] - snd[0]["t"]) / 1e6),
                 wire_note="first full-size segment at the sending edge to the last at the receiving edge")


def make_truth(run):
    st = run.st
    d = st["d1"] + st["d2"]
    keys = sorted((k for p in run.persons for k in p.keys), key=lambda k: k["t_ns"])
    queries = sorted((q for p in run.persons for q in p.queries), key=lambda q: q["query_seen_ns"])
    pastes = sorted((x for p in run.persons for x in p.pastes), key=lambda x: x["t_ns"])
    if run.bulks:
        wire_times_of_bulk(run)
    for i, k in enumerate(keys):
        k["index"] = i
        k["t_rfc3339"] = runlab.rfc3339_ns(k["t_ns"])
        if run.bulks:
            k["during_bulk"] = any(b["wire_start_ns"] <= k["t_ns"] <= b["wire_end_ns"] for b in run.bulks)
    # map the launched connections onto the TCP connections each vantage saw (by SYN order)
    per_vantage = {}
    banners = {}
    for v in VANTAGES:
        pcap = run.outdir / VANTAGES[v][1]
        per_vantage[v] = mp.connections(mp.read_tcp(pcap), {22})
        banners[v] = mp.ssh_banners_and_algorithms(pcap)
    seen = per_vantage["server_edge"]
    addr_of = {}
    for c, w in zip(run.conns, seen):
        addr_of[c["tag"]] = w["client"]
    for x in keys + queries + pastes:
        x["connection"] = addr_of.get(x.pop("conn"))
    for c in run.timeline + [cm for p in run.persons for cm in p.commands]:
        if "conn" in c:
            c["connection"] = addr_of.get(c.pop("conn"))
    timeline = [{k: v for k, v in e.items() if not k.startswith("_")} for e in run.timeline]
    timeline += [cm for p in run.persons for cm in p.commands]
    for c in run.conns:
        c["client"] = addr_of.get(c["tag"])
    timeline.sort(key=lambda e: e["start_ns"])
    vantages = {}
    for v, (role, fname, where) in VANTAGES.items():
        vp = vantage_pos(run, v)
        sessions = []
        for i, c in enumerate(run.conns):
            w = next((x for x in per_vantage[v] if x["client"] == c.get("client")), None)
            ban = banners[v].get(w["stream"], {}) if w else {}
            mine = [k for k in keys if k["connection"] == c.get("client")]
            ck = [k for k in mine if k["typed_by"] == "client_person"]
            sk = [k for k in mine if k["typed_by"] == "server_person"]
            n_rep = sum(1 for q in queries if q["connection"] == c.get("client") and q["answered"])
            s = {
                "client": c.get("client"), "server": w["server"] if w else f"{run.server_ip}:22",
                "role": c["role"], "client_program": c["client_program"],
                "client_software": ban.get("client_banner", "").removeprefix("SSH-2.0-") or None,
                "server_software": ban.get("server_banner", "").removeprefix("SSH-2.0-") or None,
                "kex": ban.get("kex"), "cipher": ban.get("cipher"),
                "interactive": c["interactive"],
                "keystrokes_typed": len(ck),
                "keystrokes_single_byte": sum(1 for k in ck if k["bytes"] == 1),
                "server_keystrokes_typed": len(sk),
                "terminal_replies": n_rep,
                "pasted_bytes": sum(x["bytes"] for x in pastes if x["connection"] == c.get("client")),
                "syn_ns": w["syn_ns"] if w else None, "last_packet_ns": w["end_ns"] if w else None,
                "expected": {
                    "transport_rtt_ms": {"client_leg": r3(2 * vp), "server_leg": r3(2 * (d - vp))},
                    "relay_suspected": {"client_side": False, "server_side": False},
                    "typist_rtt_ms": r3(2 * vp) if ck else None,
                    "keystroke_to_echo_ms": r3(2 * (d - vp)) if c["interactive"] and ck else None,
                },
            }
            if "command" in c:
                s["command"] = c["command"]
            if sk:
                s["expected"]["server_typist_rtt_ms"] = r3(2 * (d - vp))
                s["expected"]["server_keystroke_to_echo_ms"] = r3(2 * vp)
            if c.get("note"):
                s["note"] = c["note"]
            sessions.append(s)
        vantages[v] = {"file": fname, "where": where, "namespace_role": role, "interface": "eth0",
                       "one_way_from_typist_ms": vp, "sessions": sessions}
    sw = {"ssh": subprocess.run(["ssh", "-V"], stderr=subprocess.PIPE, text=True).stderr.strip(),
          "kernel": os.uname().release, **run.software}
    ses = vantages["server_edge"]["sessions"]
    sw["client_banners"] = sorted({s["client_software"] for s in ses if s["client_software"]})
    sw["server_banners"] = sorted({s["server_software"] for s in ses if s["server_software"]})
    sw["cipher_negotiated"] = sorted({s["cipher"] for s in ses if s["cipher"]})
    for prog in ["bash"] + SCENARIO_TOOLS.get(run.scenario, []):
        out = subprocess.run(TOOL_VERSION[prog], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             env=run.env()).stdout
        sw[prog] = next((x.strip() for x in out.splitlines() if x.strip()), None)
    links = {"typist_side" if run.st["topology"] == "direct" else "typist_router":
             {"one_way_delay_ms": st["d1"], "jitter_ms": st["jitter"]},
             "server_side" if run.st["topology"] == "direct" else "router_server":
             {"one_way_delay_ms": st["d2"], "jitter_ms": st["jitter"]},
             "jitter_model": "uniform +-jitter_ms per frame on each link, clamped so frames never reorder (a frame "
                             "whose delay would be below 0 leaves at once): the mean one-way delay is then a little "
                             "above the configured one" if st["jitter"] else "none"}
    addrs = {"typist": run.client_ip, "server": run.server_ip,
             "router": {"typist_side": IP["R_t"], "server_side": IP["R_s"]} if st["topology"] == "routed" else None}
    return {
        "schema": SCHEMA, "generated_by": "lab/messy.py", "created": runlab.rfc3339_ns(time.time_ns()),
        "set": run.name, "scenario": run.scenario, "setting": run.setting_name, "topology": st["topology"],
        "description": run.description, "software": sw, "links": links, "addresses": addrs, "seed": run.seed,
        "relay_anywhere": False,
        "connections_opened": [{k: v for k, v in c.items() if k != "tag"} | {"tag": c["tag"]} for c in run.conns],
        "keystrokes_typed": sum(1 for k in keys if k["typed_by"] == "client_person"),
        "server_keystrokes_typed": sum(1 for k in keys if k["typed_by"] == "server_person"),
        "keystrokes": keys, "terminal_queries": queries, "pastes": pastes, "timeline": timeline,
        "vantages": vantages,
        "measured": {"ping": run.ping, "bridges": run.bridge_stats, "slim": run.slim,
                     "client_exit_status": [p.status for p in run.persons]},
        "notes": run.notes,
    }


def _stats(vals):
    v = sorted(vals)
    if not v:
        return {"n": 0}
    return {"n": len(v), "min": r3(v[0]), "median": r3(mp.median(v)), "p99": r3(mp.pctl(v, 99)), "max": r3(v[-1])}


def links_between(run, a, b):
    """Delaying links crossed between positions a and b (one-way ms from T) on the line T --d1-- . --d2-- S."""
    lo, hi = min(a, b), max(a, b)
    d1, d = run.st["d1"], run.st["d1"] + run.st["d2"]
    return sum(1 for x, y in ((0.0, d1), (d1, d)) if x >= lo - 1e-9 and y <= hi + 1e-9)


def check_set(run, truth):
    res = {"tool": subprocess.run(["tshark", "-v"], stdout=subprocess.PIPE, text=True).stdout.splitlines()[0],
           "all_ok": True, "failed": []}

    def verdict(ok, what):
        if not ok:
            res["all_ok"] = False
            res["failed"].append(what)
        return ok

    jit = run.st["jitter"]
    d = run.st["d1"] + run.st["d2"]
    # bridges
    dirs = [x for b in run.bridge_stats if b for x in b["directions"].values()]
    late = sum(x["frames_late_over_1ms"] for x in dirs)
    worst = max((x["send_lateness_us_max"] for x in dirs), default=0.0) / 1000
    res["bridge_frames_late_over_1ms"], res["bridge_worst_lateness_ms"] = late, r3(worst)
    rows = {v: mp.read_tcp(run.outdir / f) for v, (_, f, _) in VANTAGES.items()}
    # one-way delay of every TCP packet between the two edges (one clock): the delay the bridges really gave.
    # Bulk transfers queue frames in the userspace bridges (like a router's buffer); outside bulk windows at most
    # MAX_LATE_FRAMES packets may be > 1 ms late, as run-lab.py allows for its bridges.
    owd = mp.one_way_delays(run.outdir / VANTAGES["typist_edge"][1], run.outdir / VANTAGES["server_edge"][1],
                            run.client_ip)
    windows = mp.merge_windows(mp.bulk_windows(rows["typist_edge"]) + mp.bulk_windows(rows["server_edge"]))
    limit = d + 2 * (1.0 + jit)  # each packet crosses two bridges: more than 1 ms late in each

    def in_bulk(t):
        return any(a <= t <= b for a, b, _, _ in windows)

    quiet = [x for x in owd if not in_bulk(x[0])]
    busy = [x for x in owd if in_bulk(x[0])]
    late_quiet = [x for x in quiet if x[3] > limit]
    res["one_way_delay_ms"] = {
        "configured": d, "late_limit": limit, "packets_at_both_edges": len(owd),
        "outside_bulk": _stats([x[3] for x in quiet]), "late_outside_bulk": len(late_quiet),
        "bulk_windows": [{"start_ns": a, "end_ns": b, "full_size_segments": n, "bytes": nb} for a, b, n, nb in windows],
        "during_bulk": _stats([x[3] for x in busy]),
        "during_bulk_late": sum(1 for x in busy if x[3] > limit)}
    if windows or jit > min(run.st["d1"], run.st["d2"]):
        # bulk: the bridges' lateness counts frames queued behind a burst; jitter larger than a link's delay:
        # it counts frames whose drawn delay was below zero (sent at once, "late" against a due time in the past)
        verdict(len(late_quiet) <= MAX_LATE_FRAMES, f"one-way delay outside bulk: {len(late_quiet)} packets late")
    else:
        verdict(late <= MAX_LATE_FRAMES and len(late_quiet) <= MAX_LATE_FRAMES,
                f"bridges: {late} frames sent > 1 ms late, {len(late_quiet)} packets > {limit} ms one way")
    owd_c2s = {x[0]: x[3] for x in owd if x[1] == "c2s"}
    owd_s2c = {x[0]: x[3] for x in owd if x[1] == "s2c"}
    data = {v: [r for r in rs if r["len"] > 0] for v, rs in rows.items()}
    # connections
    res["connections"], res["handshakes"] = {}, []
    for v in VANTAGES:
        seen = mp.connections(rows[v], {22})
        ok = len(seen) == len(run.conns)
        res["connections"][v] = {"expected": len(run.conns), "seen": len(seen), "ok": ok}
        verdict(ok, f"{v}: {len(seen)} TCP connections to port 22, {len(run.conns)} opened")
        vp = vantage_pos(run, v)
        for w in seen:
            exp_s, exp_c = 2 * (d - vp), 2 * vp
            tol_s = 1.5 + 2 * jit * links_between(run, vp, d)
            tol_c = 1.5 + 2 * jit * links_between(run, 0.0, vp)
            ok = (w["server_leg_ms"] is not None and w["client_leg_ms"] is not None
                  and abs(w["server_leg_ms"] - exp_s) <= tol_s and abs(w["client_leg_ms"] - exp_c) <= tol_c)
            verdict(ok, f"handshake at {v} {w['client']}: {w['server_leg_ms']}/{exp_s}, {w['client_leg_ms']}/{exp_c}")
            res["handshakes"].append({"vantage": v, "client": w["client"],
                                      "server_leg_ms": {"expected": exp_s, "measured": r3(w["server_leg_ms"])},
                                      "client_leg_ms": {"expected": exp_c, "measured": r3(w["client_leg_ms"])},
                                      "tolerance_ms": {"server_leg": tol_s, "client_leg": tol_c}, "ok": ok})
        ttl_want = ({"typist_edge": ("64", "63"), "server_edge": ("63", "64")}[v] if run.st["topology"] == "routed"
                    else ("64", "64"))
        for w in seen:
            ok = w["ttl"]["client_to_server"] == [ttl_want[0]] and w["ttl"]["server_to_client"] == [ttl_want[1]]
            verdict(ok, f"TTL at {v} {w['client']}: {w['ttl']}")
    # each key on the wire at its own edge: client person's keys as client data at the typist edge, server
    # person's keys as server data at the server edge
    lags = []
    for k in truth["keystrokes"]:
        if not k["connection"]:
            continue
        cip, cport = k["connection"].rsplit(":", 1)
        if k["typed_by"] == "client_person":
            r = mp.first_packet_after(data["typist_edge"], k["t_ns"], cip, int(cport))
        else:
            r = mp.first_packet_after([x for x in data["server_edge"] if x["dport"] == int(cport)], k["t_ns"],
                                      run.server_ip, 22)
        k["own_edge_packet_ns"] = r["t"] if r else None
        if r:
            lags.append((r["t"] - k["t_ns"]) / 1e6)
            k["one_way_between_edges_ms"] = r3((owd_c2s if k["typed_by"] == "client_person" else owd_s2c).get(r["t"]))
    n = len(truth["keystrokes"])
    ok = len(lags) == n and (n == 0 or (mp.median(lags) < 2.0 and mp.pctl(lags, 90) < 10.0))
    res["keystroke_log_to_own_edge_packet_ms"] = {
        "keystrokes": n, "matched": len(lags), "median": r3(mp.median(lags)), "p90": r3(mp.pctl(lags, 90)),
        "max": r3(max(lags)) if lags else None, "ok": ok,
        "what": "key's write() to the first data packet of its connection leaving the person's host (client "
                "data at the typist edge; for the server person, server data at the server edge)"}
    verdict(ok, f"keystrokes on the wire: {len(lags)} of {n}, median {mp.median(lags)} ms")
    ow = [(k.get("during_bulk", False), k["one_way_between_edges_ms"]) for k in truth["keystrokes"]
          if k.get("one_way_between_edges_ms") is not None]
    res["keystroke_one_way_between_edges_ms"] = {"configured": d, "not_during_bulk": _stats([x for b, x in ow if not b]),
                                                 "during_bulk": _stats([x for b, x in ow if b])}
    # echo delays (for information: output after a key is not always its echo, e.g. in vim or under bulk output)
    res["echo_ms"] = []
    for v in VANTAGES:
        vp = vantage_pos(run, v)
        for s in truth["vantages"][v]["sessions"]:
            if not s["client"]:
                continue
            cip, cport = s["client"].rsplit(":", 1)
            for who, exp_key, frm, to in (("client_person", "keystroke_to_echo_ms", (cip, int(cport)),
                                           (run.server_ip, 22)),
                                          ("server_person", "server_keystroke_to_echo_ms", (run.server_ip, 22),
                                           (cip, int(cport)))):
                ks = [k for k in truth["keystrokes"] if k["connection"] == s["client"] and k["typed_by"] == who]
                if not ks:
                    continue
                own = 0.0 if who == "client_person" else d
                off = max(0.0, abs(vp - own) - 2 * jit * links_between(run, vp, own) - 0.5)
                shifted = [dict(k, t_ns=k["t_ns"] + int(off * 1e6)) for k in ks]
                smp = mp.echo_samples(data[v], shifted, frm[0], frm[1], to[0], to[1])
                res["echo_ms"].append({"vantage": v, "client": s["client"], "typed_by": who,
                                       "expected": s["expected"].get(exp_key), "samples": len(smp),
                                       "median": r3(mp.median(smp)), "p10": r3(mp.pctl(smp, 10)),
                                       "p90": r3(mp.pctl(smp, 90))})
    return res


# --------------------------------------------------------------------------------------------------------------
# Index and echoloc comparison
# --------------------------------------------------------------------------------------------------------------


def write_index(outroot):
    sets = []
    for t in sorted(outroot.glob("*/truth.json")):
        truth = json.loads(t.read_text())
        files = {v: x["file"] for v, x in truth["vantages"].items()}
        sets.append({
            "dir": t.parent.name, "scenario": truth["scenario"], "setting": truth["setting"],
            "topology": truth["topology"], "links": truth["links"], "files": files,
            "bytes": {f: (t.parent / f).stat().st_size for f in files.values()},
            "keystrokes_typed": truth["keystrokes_typed"], "server_keystrokes_typed": truth["server_keystrokes_typed"],
            "terminal_queries": len(truth["terminal_queries"]), "pastes": len(truth["pastes"]),
            "sessions": [{k: s[k] for k in ("client", "server", "role", "client_software", "server_software",
                                            "interactive", "keystrokes_typed", "server_keystrokes_typed",
                                            "terminal_replies", "pasted_bytes")}
                         for s in truth["vantages"]["server_edge"]["sessions"]],
            "check_ok": truth.get("check", {}).get("all_ok"),
        })
    (outroot / "index.json").write_text(json.dumps({"schema": "echoloc-messy-index/1", "relay_anywhere": False,
                                                    "sets": sets}, indent=1) + "\n")


def compare_main(argv):
    """Run echoloc replay over every pcap of the corpus and compare with the truth (the false-positive baseline)."""
    p = argparse.ArgumentParser(prog="messy.py compare", description=compare_main.__doc__)
    p.add_argument("--out", default=str(DEFAULT_OUT))
    p.add_argument("--echoloc", default=str(HERE.parent / "target" / "release" / "echoloc"))
    a = p.parse_args(argv)
    root = Path(a.out)
    rows, md = [], ["| set | vantage | session (client -> server, role) | keys truth / echoloc | srv keys truth / "
                    "echoloc | client_relay | server_relay | typist_rtt echoloc / exp | echo p50 echoloc / exp |",
                    "|---|---|---|---|---|---|---|---|---|---|"]
    if not Path(a.echoloc).exists():
        sys.exit(f"{a.echoloc} is missing: cargo build --release")
    for t in sorted(root.glob("*/truth.json")):
        truth = json.loads(t.read_text())
        for v, vt in truth["vantages"].items():
            out = subprocess.run([a.echoloc, "replay", "--no-progress", "--format", "json", str(t.parent / vt["file"])],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            recs = [json.loads(x) for x in out.stdout.splitlines() if x.startswith("{")]
            for s in vt["sessions"]:
                e = next((r for r in recs if r.get("client") == s["client"] and r.get("server") == s["server"]), None)

                def g(*ks):
                    return _dig(e, *ks) if e else None
                row = {"set": t.parent.name, "vantage": v, "client": s["client"], "server": s["server"],
                       "role": s["role"], "keystrokes_typed": s["keystrokes_typed"],
                       "server_keystrokes_typed": s["server_keystrokes_typed"],
                       "echoloc_found": e is not None, "echoloc_keystrokes": g("keystrokes"),
                       "echoloc_server_keystrokes": g("server_keystrokes"),
                       "client_relay": g("client_relay"), "server_relay": g("server_relay"),
                       "typist_rtt_ms": g("typist_rtt_ms"), "expected_typist_rtt_ms": s["expected"]["typist_rtt_ms"],
                       "echo_p50_ms": g("echo_ms", "p50"), "expected_echo_ms": s["expected"]["keystroke_to_echo_ms"]}
                rows.append(row)

                def relay(x):
                    if e is None:
                        return "(no record)"
                    if not x:
                        return "null"
                    return "**YES** " + "; ".join(x.get("evidence") or []) if x.get("suspected") else "no"
                md.append(f"| {row['set']} | {v} | {s['client']} -> {s['server']} ({s['role']}) | "
                          f"{s['keystrokes_typed']} / {row['echoloc_keystrokes']} | {s['server_keystrokes_typed']} / "
                          f"{_f(row['echoloc_server_keystrokes'])} | "
                          f"{relay(row['client_relay'])} | {relay(row['server_relay'])} | "
                          f"{_f(row['typist_rtt_ms'])} / {_f(row['expected_typist_rtt_ms'])} | "
                          f"{_f(row['echo_p50_ms'])} / {_f(row['expected_echo_ms'])} |")
    (root / "echoloc-baseline.json").write_text(json.dumps(rows, indent=1) + "\n")
    (root / "echoloc-baseline.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


def _dig(d, *ks):
    for k in ks:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


def _f(x):
    return "-" if x is None else str(x) if isinstance(x, int) else f"{x:.1f}" if isinstance(x, float) else str(x)
