"""truth.json of a VPN lab set, measured from its captures (outer.pcap at G's outer interface, laptop.pcap at L's,
inner.pcap at G's inside; typist.pcap and laptop-lan.pcap in the relay scenario), its key log (keys.json) and the
run's facts (meta.json). All namespaces share one clock, so times at two vantages subtract."""

import json
import statistics
from collections import Counter
from pathlib import Path

from lab_common import IP, r3
from lab_vpn_pcap import identity, is_data, read_pcap, requests_answers
from lab_vpn_tunnels import LAN_L, LAN_T, TUN_L

SCHEMA = "echoloc-vpn-lab-truth/1"
KEY_BYTES = 36  # one keystroke or one echo, chacha20-poly1305 (OpenSSH 9.2p1)
OUT_L, OUT_G = IP["T"], IP["R_t"]


def med(xs):
    return r3(statistics.median(xs)) if xs else None


def summary(xs):
    return {"n": len(xs), "median": med(xs), "min": r3(min(xs)) if xs else None, "max": r3(max(xs)) if xs else None}


def one_way(a_pkts, b_pkts, a_side):
    """One-way times between two vantages from identical packets: {direction: [ms]}; a_side is the address behind
    vantage a (packets from it go a -> b)."""
    at_b = {}
    for p in b_pkts:
        at_b.setdefault(identity(p), []).append(p.t)
    out = {"a_to_b": [], "b_to_a": []}
    for p in a_pkts:
        ts = at_b.get(identity(p))
        if not ts:
            continue
        t = ts.pop(0)
        if p.src == a_side:
            out["a_to_b"].append((t - p.t) / 1e6)
        else:
            out["b_to_a"].append((p.t - t) / 1e6)
    return {k: [x for x in v if 0 <= x < 2000] for k, v in out.items()}


def pair_list(pairs):
    return [{"request_frame": q, "answer_frame": a, "rtt_ms": r3((ta - tq) / 1e6), "what": w, "request_ns": tq}
            for tq, ta, w, q, a in pairs]


def keys_at_gateway(kind, keys, outer, inner):
    """Each typed key's inner segment, its echo and the laptop's ACK at G's inside, and the outer packet carrying
    each at G's outer interface."""
    conn = [p for p in inner if p.proto == "tcp" and 22 in (p.sport, p.dport)]
    c2s = [p for p in conn if p.dport == 22]
    s2c = [p for p in conn if p.sport == 22]
    up = [p for p in outer if p.src == OUT_L and is_data(kind, p)]
    down = [p for p in outer if p.src == OUT_G and is_data(kind, p)]
    used, rows = set(), []
    for k in keys:
        seg = next((p for p in c2s if p.t > k["t_ns"] and p.plen == KEY_BYTES and p.i not in used), None)
        if seg is None:
            rows.append({"index": k["index"], "key": k["key"], "found": False})
            continue
        used.add(seg.i)
        echo = next((p for p in s2c if p.t > seg.t and p.plen > 0), None)
        ack = echo and next((p for p in c2s if p.t > echo.t and (p.ack - echo.seq - echo.plen) % 2**32 < 2**31),
                            None)
        o_key = max((p for p in up if p.t <= seg.t), key=lambda p: p.t, default=None)
        o_echo = echo and next((p for p in down if p.t >= echo.t), None)
        o_ack = ack and max((p for p in up if p.t <= ack.t), key=lambda p: p.t, default=None)
        rows.append({"index": k["index"], "key": k["key"], "typed_ns": k["t_ns"], "found": True,
                     "inner": {"key_ns": seg.t, "echo_ns": echo and echo.t, "echo_bytes": echo and echo.plen,
                               "ack_ns": ack and ack.t, "ack_is_pure": ack is not None and ack.plen == 0},
                     "outer": {"key": o_key, "echo": o_echo, "ack": o_ack}})
    return rows


def truth_for(d):
    d = Path(d)
    meta = json.loads((d / "meta.json").read_text())
    log = json.loads((d / "keys.json").read_text())
    keys = log["keys"]
    kind = meta["tunnel"]
    wrapped = meta["tunnel_info"].get("control_channel_wrap", "tls-auth")
    outer, laptop, inner = (read_pcap(d / f) for f in ("outer.pcap", "laptop.pcap", "inner.pcap"))
    outer = [p for p in outer if {p.src, p.dst} == {OUT_L, OUT_G}]
    laptop = [p for p in laptop if {p.src, p.dst} == {OUT_L, OUT_G}]

    # the outer link, measured: identical tunnel packets at G's outer interface and at the laptop's
    ow = one_way(outer, laptop, OUT_G)
    down, upl = ow["a_to_b"], ow["b_to_a"]
    # the tunnel's own request/answer exchanges, at the corporate edge and at the laptop
    g_req = requests_answers(kind, outer, OUT_G, OUT_L, wrapped)
    l_req = requests_answers(kind, outer, OUT_L, OUT_G, wrapped)
    g_req_lap = requests_answers(kind, laptop, OUT_G, OUT_L, wrapped)
    turn = [(ta - tq) / 1e6 for tq, ta, *_ in g_req_lap]
    laptop_rtt = (statistics.median(down) + statistics.median(upl) + statistics.median(turn)
                  if down and upl and turn else None)

    t = {"schema": SCHEMA, "tunnel": kind, "scenario": meta["scenario"], "setting": meta["setting"],
         "configured_delays_ms": meta["configured_delays_ms"], "tunnel_info": meta["tunnel_info"],
         "addresses": {"laptop_outer": OUT_L, "gateway_outer": OUT_G, "gateway_inside": IP["R_s"],
                       "server": IP["S"],
                       "laptop_tunnel": meta["tunnel_info"].get("laptop_tunnel_address", TUN_L).split("/")[0],
                       "typist": LAN_T if meta["scenario"] == "relay" else None,
                       "laptop_lan": LAN_L if meta["scenario"] == "relay" else None},
         "captures": {f: f"namespace {r}, {i}" for f, (r, i) in meta["captures"].items()},
         "keys_typed": len(keys),
         "measured_one_way_outer_ms": {"gateway_to_laptop": summary(down), "laptop_to_gateway": summary(upl),
                                       "method": "identical UDP/TCP payload bytes in outer.pcap and laptop.pcap"},
         "laptop_turnaround_ms": {**summary(turn), "method": "gateway-initiated tunnel request arriving at "
                                  "laptop.pcap -> the laptop's answer leaving it"},
         "laptop_rtt_ms": r3(laptop_rtt),
         "laptop_rtt_method": "median one-way G->L + median one-way L->G + median laptop turnaround",
         "tunnel_client_rtt_ms": med([(ta - tq) / 1e6 for tq, ta, *_ in g_req]),
         "tunnel_client_rtt_samples": pair_list(g_req),
         "tunnel_server_rtt_ms": med([(ta - tq) / 1e6 for tq, ta, *_ in l_req]),
         "tunnel_server_rtt_samples": pair_list(l_req),
         "pairing": {"wireguard": "initiation (type 1, sender index) -> response (type 2) whose receiver index "
                                  "is that sender index",
                     "ipsec": "IKE request -> response with the same initiator SPI and message ID (header in the "
                              "clear; on 4500 after the 4-byte non-ESP marker)",
                     "openvpn-udp": "tls-auth control packet (message packet-id in the clear) -> the first packet "
                                    "of the other side whose ACK array holds that id for that session",
                     "openvpn-tcp": "tls-crypt: the gateway's TCP segment carrying control packets -> the laptop's "
                                    "first TCP segment acknowledging it",
                     "anyconnect": "the gateway's TCP segment on 443 (CSTP over TLS: mostly its answers to the "
                                   "laptop's DPD requests) -> the laptop's first TCP segment acknowledging it; DTLS "
                                   "records are encrypted and not paired"}[kind],
         "gateway_pokes": log.get("pokes", []),
         "outer_packets": {"total": len(outer), "data": sum(is_data(kind, p) for p in outer)}}

    rows = keys_at_gateway(kind, keys, outer, inner) if keys else []
    found = [r for r in rows if r["found"] and r["outer"]["key"] and r["outer"]["echo"]]
    sizes = {w: Counter(r["outer"][w].plen for r in found if r["outer"][w]) for w in ("key", "echo", "ack")}
    per_key, typ, fwd = [], [], {"key_in": [], "echo_out": [], "ack_in": []}
    for r in rows:
        if r not in found:
            per_key.append({"index": r["index"], "key": r["key"], "found": False})
            continue
        i, o = r["inner"], r["outer"]
        e = {"index": r["index"], "key": r["key"], "typed_ns": r["typed_ns"],
             "echo_inside_ms": r3((i["echo_ns"] - i["key_ns"]) / 1e6),
             "echo_ms_truth": r3((o["echo"].t - o["key"].t) / 1e6),
             "outer_frames": {"key": o["key"].i, "echo": o["echo"].i, "ack": o["ack"] and o["ack"].i},
             "gateway_forwarding_ms": {"key": r3((i["key_ns"] - o["key"].t) / 1e6),
                                       "echo": r3((o["echo"].t - i["echo_ns"]) / 1e6)}}
        fwd["key_in"].append((i["key_ns"] - o["key"].t) / 1e6)
        fwd["echo_out"].append((o["echo"].t - i["echo_ns"]) / 1e6)
        if o["ack"] and i["ack_is_pure"]:
            e["typist_rtt_ms"] = r3((o["ack"].t - o["echo"].t) / 1e6)
            e["echo_inside_to_ack_inside_ms"] = r3((i["ack_ns"] - i["echo_ns"]) / 1e6)
            e["gateway_forwarding_ms"]["ack"] = r3((i["ack_ns"] - o["ack"].t) / 1e6)
            fwd["ack_in"].append((i["ack_ns"] - o["ack"].t) / 1e6)
            typ.append((o["ack"].t - o["echo"].t) / 1e6)
        per_key.append(e)
    # the laptop's own part of the typist RTT: echo arriving at the laptop -> its ACK leaving it
    at_lap = {identity(p): p.t for p in laptop}
    lap_ack = [(at_lap[identity(r["outer"]["ack"])] - at_lap[identity(r["outer"]["echo"])]) / 1e6 for r in found
               if r["outer"]["ack"] and identity(r["outer"]["ack"]) in at_lap
               and identity(r["outer"]["echo"]) in at_lap]
    t.update({
        "keys_found_inside": len(found),
        "typist_rtt_ms": med(typ),
        "typist_rtt_method": "per key: the outer packet carrying the inner echo leaving G's outer interface -> the "
                             "outer packet carrying the laptop's inner pure ACK of it arriving there (= echo -> ACK "
                             "at G's inside minus G's own forwarding of both), median over keys",
        "typist_rtt_samples_ms": summary(typ),
        "laptop_ack_turnaround_ms": summary(lap_ack),
        "gateway_forwarding_ms": {k: summary(v) for k, v in fwd.items()},
        "echo_ms_truth": summary([k["echo_ms_truth"] for k in per_key if "echo_ms_truth" in k]),
        "outer_size_classes": {w: (c.most_common(1)[0][0] if c else None) for w, c in sizes.items()},
        "outer_size_counts": {w: {str(k): v for k, v in sorted(c.items())} for w, c in sizes.items()},
        "outer_size_unit": "TCP payload bytes" if kind == "openvpn-tcp" else "UDP payload bytes",
        "inner_sizes": {"key": KEY_BYTES, "echo": KEY_BYTES, "ack": 0, "unit": "inner TCP payload bytes"},
        "keys": per_key,
    })
    if meta["scenario"] == "relay":
        t.update(relay_truth(d, t))
    t["meta"] = {k: meta[k] for k in ("seed", "session_start_ns", "pings_before_and_at_start", "bridges", "lines",
                                      "typing_gap_s", "think_s", "bulk_command")}
    (d / "truth.json").write_text(json.dumps(t, indent=1) + "\n")
    return t


def relay_truth(d, t):
    """T --d0-- L: the typist's link, measured from typist.pcap (T) and laptop-lan.pcap (L's LAN side)."""
    tp = [p for p in read_pcap(d / "typist.pcap") if p.proto == "tcp"]
    lp = [p for p in read_pcap(d / "laptop-lan.pcap") if p.proto == "tcp"]
    ow = one_way(tp, lp, LAN_T)
    d0 = {"typist_to_laptop": summary(ow["a_to_b"]), "laptop_to_typist": summary(ow["b_to_a"])}
    far = None
    if t["laptop_rtt_ms"] is not None and ow["a_to_b"] and ow["b_to_a"]:
        far = r3(t["laptop_rtt_ms"] + statistics.median(ow["a_to_b"]) + statistics.median(ow["b_to_a"]))
    return {"measured_one_way_d0_ms": d0, "far_typist_rtt_ms": far,
            "far_typist_rtt_method": "laptop_rtt_ms + measured one-way T->L + L->T (identical TCP segments at T "
                                     "and at L's LAN side); the inner TCP ends at L (socat), the SSH session at T"}
