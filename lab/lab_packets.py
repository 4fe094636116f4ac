"""Reading the captures with tshark (read_tcp) and finding each keystroke's own packet (match_keystroke_packets)
and echo (pair_echoes) at each vantage, and socat's hold of each packet in portfwd (forwarder_holds). Used by the
check (lab_check.py) and the chaff analysis (lab_chaff.py)."""

import bisect
import subprocess

from lab_common import FWD_PORT, IP, OBFUSCATION_DEFAULT_INTERVAL_MS

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


def obfuscation_interval(truth):
    """Client chaff interval (ms) of a set made with keystroke-timing obfuscation, else None."""
    sw = truth["software"]
    if not sw.get("keystroke_timing_obfuscation"):
        return None
    return (sw.get("obscure_keystroke_timing") or {}).get("interval_ms") or OBFUSCATION_DEFAULT_INTERVAL_MS


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
