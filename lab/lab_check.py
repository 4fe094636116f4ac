"""The check of a capture set (check_capture_set): handshake legs, TTLs and keystroke-to-echo times measured with
tshark at each vantage, compared with the truth; written to truth.json as `check`."""

import shutil
import subprocess

from lab_common import IP, r3
from lab_packets import forwarder_holds, match_keystroke_packets, obfuscation_interval, pair_echoes, read_tcp

# --------------------------------------------------------------------------------------------------------------
# Checking captures with tshark
# --------------------------------------------------------------------------------------------------------------

MAX_LATE_FRAMES = 2  # the check accepts this many bridge frames sent 1-5 ms late (see check_capture_set)


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
