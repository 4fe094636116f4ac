"""Keystroke-timing obfuscation (OpenSSH >= 9.5 chaff): SSH packet sizes, the client's own chaff log, and
analyze_chaff (chaff_expected, grid, bursts, PONG vs echo delays at each vantage, from the captures)."""

import bisect
from pathlib import Path

from lab_common import FWD_PORT, IP, r3
from lab_packets import forwarder_holds, match_keystroke_packets, obfuscation_interval, read_tcp


def pct(sorted_vals, q):
    """Nearest-rank percentile of an ascending list (q in 0..100)."""
    if not sorted_vals:
        return None
    i = min(len(sorted_vals) - 1, max(0, round(q / 100 * (len(sorted_vals) - 1))))
    return sorted_vals[i]


def stats_ms(vals):
    v = sorted(vals)
    if not v:
        return {"n": 0}
    return {"n": len(v), "min": r3(v[0]), "p10": r3(pct(v, 10)), "median": r3(pct(v, 50)), "p90": r3(pct(v, 90)),
            "max": r3(v[-1]), "mean": r3(sum(v) / len(v))}


def ssh_packet_len(payload):
    """TCP payload of one SSH binary packet with chacha20-poly1305 (4-byte length, padding >= 4 to a multiple of
    8 over padding-length byte + payload + padding, 16-byte tag)."""
    body = 1 + payload
    pad = 8 - body % 8
    if pad < 4:
        pad += 8
    return 4 + body + pad + 16


def wrapped_len(inner):
    """An inner ssh packet of `inner` bytes carried as SSH_MSG_CHANNEL_DATA by an outer ssh (ProxyJump)."""
    return ssh_packet_len(1 + 4 + 4 + inner)


KEYSTROKE_LEN = ssh_packet_len(1 + 4 + 4 + 1)  # CHANNEL_DATA with one byte: 36
DISCONNECT_LEN = ssh_packet_len(1 + 4 + 4 + len("disconnected by user") + 4)  # client's DISCONNECT: 60


def ssh_sizes_for_session_end(size):
    """(lone DISCONNECT, CHANNEL_CLOSE + DISCONNECT in one segment) for a vantage whose keystrokes are `size`:
    36 on the session's own connection, 76 where it is wrapped in an outer ssh."""
    if size == KEYSTROKE_LEN:
        return DISCONNECT_LEN, KEYSTROKE_LEN + DISCONNECT_LEN
    if size == wrapped_len(KEYSTROKE_LEN):
        return wrapped_len(DISCONNECT_LEN), wrapped_len(KEYSTROKE_LEN + DISCONNECT_LEN)
    return None, None


def parse_client_chaff_log(path):
    """Chaff bursts as logged by the OpenSSH client at DEBUG3 (clientloop.c obfuscate_keystroke_timing)."""
    bursts = []
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        if "obfuscate_keystroke_timing: starting" in line:
            bursts.append({"chaff_sent": None, "stop_reason": None})
        elif "obfuscate_keystroke_timing: stopping:" in line:
            rest = line.split("stopping:", 1)[1].strip()
            reason, _, tail = rest.partition(" (")
            n = int(tail.split()[0]) if tail[:1].isdigit() else None
            if not bursts or bursts[-1]["stop_reason"] is not None:
                bursts.append({"chaff_sent": None, "stop_reason": None})
            bursts[-1].update(chaff_sent=n, stop_reason=reason)
    return {"source": "ssh client log at LogLevel DEBUG3 (-E): obfuscate_keystroke_timing starting/stopping lines",
            "bursts": bursts, "total": sum(b["chaff_sent"] or 0 for b in bursts)}


def resegmenting_vantage(truth, vname):
    """Why chaff cannot be counted from TCP segments at this vantage (a text), or None where it can.

    portfwd, S's edge: socat on R forwards the byte stream on its own TCP connection to S with Nagle on (its
    default), so whenever the R--S round trip is longer than the time between two client packets (chaff every
    ~20 ms) it holds a packet until the one before is acknowledged and sends what piled up as one segment: one
    segment can carry a keystroke and a chaff packet, or several chaff packets (seen: 72-byte segments). The
    vantages on the client's own TCP connection (typist edge, relay outer) see the client's segments as sent:
    one ssh packet each, counted exactly.
    """
    if truth["scenario"] == "portfwd" and vname == "server_edge":
        return ("chaff not counted here: socat on R re-segments the ssh byte stream towards S (Nagle on): "
                "whenever the R--S round trip exceeds the time between two client packets it sends a keystroke and "
                "chaff, or several chaff packets, in one TCP segment, so the number of segments is not the "
                "number of ssh packets. The exact count is at typist_edge and relay_outer (the client's own TCP "
                "connection), and in chaff.logged_by_client.")
    return None


def analyze_chaff(truth, outdir):
    """Chaff at each vantage, from the captures: chaff_expected, grid spacing, bursts, PONG vs echo delays.

    Keystroke size class at a vantage: TCP payload length of the keystroke packets there (36 with
    chacha20-poly1305 on the ssh connection itself; larger where the session is wrapped in an outer ssh, as on
    T--R in jump). Interactive part: from the first keystroke packet to the end of the session, which is the
    client's first data packet of another size after the last keystroke (its SSH_MSG_DISCONNECT, alone or
    wrapped, or the outer ssh's own end in jump), or the connection's first FIN/RST if no such packet passes
    the vantage. When that packet is a lone DISCONNECT, the size-class packet just before it (< 2 ms) is the
    client's CHANNEL_CLOSE answering the server's and is left out; when CLOSE and DISCONNECT share a segment
    there is nothing to leave out. chaff_expected = client size-class packets in the interactive part minus
    keystrokes typed. Also adds the client's hold of each terminal reply to truth["terminal_queries"].
    """
    interval = obfuscation_interval(truth)
    matches = match_keystroke_packets(truth, outdir)
    fwd_hold = forwarder_holds(truth, outdir)  # portfwd: socat's hold of each client packet towards S
    keys = truth["keystrokes"]
    for i, k in enumerate(keys):
        r = matches["typist_edge"][i]
        k["typist_edge_packet_ns"] = r["t"] if r is not None else None
    client_ips = {IP["T"], IP["T_direct"], IP["R_s"]}
    idle_gap_ns = 5 * interval * 1e6  # a longer silence ends a burst
    # The client holds a terminal's answer for its next slot like a key: the query -> reply turnaround at the
    # typist edge is the typist's at-once answer plus that hold, not a round trip through anything
    te_rows = [r for r in read_tcp(outdir / truth["vantages"]["typist_edge"]["file"])
               if r["len"] > 0 and not r["retrans"]]
    for q in truth.get("terminal_queries", []):
        qp = next((r for r in reversed(te_rows) if r["sport"] in (22, FWD_PORT) and r["t"] <= q["query_seen_ns"]),
                  None)
        rp = next((r for r in te_rows if r["dport"] in (22, FWD_PORT) and r["src"] in client_ips
                   and r["t"] >= q["reply_sent_ns"]), None)
        q["typist_edge_query_packet_ns"] = qp["t"] if qp else None
        q["typist_edge_reply_packet_ns"] = rp["t"] if rp else None
        q["reply_held_by_client_ms"] = r3((rp["t"] - q["reply_sent_ns"]) / 1e6) if rp else None
        q["typist_edge_query_to_reply_ms"] = r3((rp["t"] - qp["t"]) / 1e6) if rp and qp else None

    def pk(r):  # identity of a packet across separate reads of the same capture
        return (r["t"], r["stream"], r["src"], r["sport"])

    summary = {"interval_ms": interval, "vantages": {}}
    for vname, v in truth["vantages"].items():
        problems = []
        rows = read_tcp(outdir / v["file"])
        retrans = sum(1 for r in rows if r["retrans"])
        rows = [r for r in rows if not r["retrans"]]  # a segment sent again is not another packet of the client
        got = matches[vname]
        streams = {r["stream"] for r in got if r is not None}
        up = [r for r in rows if r["len"] > 0 and r["stream"] in streams and r["src"] in client_ips
              and r["dport"] in (22, FWD_PORT)]
        down = [r for r in rows if r["len"] > 0 and r["stream"] in streams and r["sport"] in (22, FWD_PORT)]
        matched = [r for r in got if r is not None]
        if len(matched) != len(keys):
            problems.append(f"{len(keys) - len(matched)} keystrokes without a packet")
        if not matched:
            v["chaff_expected"] = None
            v["chaff"] = {"consistent": False, "problems": problems}
            if resegmenting_vantage(truth, vname):
                v["chaff_note"] = resegmenting_vantage(truth, vname)
            continue
        sizes = {}
        for r in matched:
            sizes[r["len"]] = sizes.get(r["len"], 0) + 1
        size = max(sizes, key=sizes.get)
        if len(sizes) > 1:
            problems.append(f"keystroke packets of several sizes {sizes}")
        start = min(r["t"] for r in matched)
        last_key = max(r["t"] for r in matched)
        after = [r for r in up if r["t"] > last_key]
        end_pkt = next((r for r in after if r["len"] != size), None)
        if end_pkt is not None:
            # The client answers the server's channel close with its own CHANNEL_CLOSE (keystroke size) and
            # then sends DISCONNECT; both leave in one loop, as two segments or coalesced into one. Which one
            # it was follows from the end packet's size (a chaff packet can leave in the same instant, so
            # timing alone cannot tell).
            end = end_pkt["t"]
            lone, both = ssh_sizes_for_session_end(size)
            if end_pkt["len"] == lone:
                cands = [r for r in after if r["len"] == size and r["t"] < end and end - r["t"] < 2_000_000]
                if cands:
                    end = cands[-1]["t"]
                    end_text = ("the client's CHANNEL_CLOSE (keystroke size, left out), sent just before its "
                                "DISCONNECT")
                else:
                    problems.append("DISCONNECT without a separate CHANNEL_CLOSE before it")
                    end_text = "the client's DISCONNECT"
            elif end_pkt["len"] == both:
                end_text = "the client's CHANNEL_CLOSE and DISCONNECT coalesced into one segment"
            elif lone != DISCONNECT_LEN and end_pkt["len"] in (DISCONNECT_LEN, KEYSTROKE_LEN):
                # wrapped session (T--R in jump): the outer `ssh -W` ended its own channel or connection before
                # forwarding the inner client's last packets
                end_text = "the outer ssh's own EOF/CLOSE/DISCONNECT (the inner client's last packets not sent)"
            else:
                problems.append(f"unexpected end-of-session packet of {end_pkt['len']} bytes")
                end_text = "the client's first non-size-class packet after the last keystroke"
        else:
            # e.g. the server edge in jump: the relay's sshd ends its TCP connection to S (FIN/RST) without
            # forwarding the inner client's last packets; the connection's end ends the interactive part
            fin = next((r for r in rows if r["stream"] in streams and r["t"] > last_key and (r["fin"] or r["rst"])),
                       None)
            if fin is None:
                problems.append("no end of session (DISCONNECT, FIN or RST) after the last keystroke")
                end = up[-1]["t"] + 1
                end_text = "end of capture"
            else:
                end = fin["t"]
                end_text = "first FIN/RST of the session's TCP connection (no DISCONNECT passed this vantage)"
        in_part = [r for r in up if start <= r["t"] < end and r["len"] == size]
        key_ids = {pk(r) for r in matched}
        chaff = [r for r in in_part if pk(r) not in key_ids]
        n_expected = len(in_part) - len(keys)
        if n_expected != len(chaff):
            problems.append(f"size-class packets minus keystrokes {n_expected} != unmatched size-class "
                            f"packets {len(chaff)}")
        # grid: intervals between consecutive size-class client packets inside bursts
        seq = sorted(in_part, key=lambda r: r["t"])
        gaps = [(b["t"] - a["t"]) / 1e6 for a, b in zip(seq, seq[1:]) if b["t"] - a["t"] < idle_gap_ns]
        bursts = []
        for r in seq:
            if not bursts or r["t"] - bursts[-1][-1]["t"] >= idle_gap_ns:
                bursts.append([])
            bursts[-1].append(r)
        burst_out = []
        for b in bursts:
            ks = [r for r in b if pk(r) in key_ids]
            last_k = max((r["t"] for r in ks), default=None)
            burst_out.append({
                "start_ns": b[0]["t"], "end_ns": b[-1]["t"], "packets": len(b), "keystrokes": len(ks),
                "chaff": len(b) - len(ks),
                "last_keystroke_to_last_chaff_ms": r3((b[-1]["t"] - last_k) / 1e6) if last_k else None,
                "ended_by": "session end" if b is bursts[-1] and end - b[-1]["t"] < 3 * interval * 1e6
                else "chaff time expired",
            })
        # answers: the first server data packet after each size-class client packet, within half an interval of
        # where the answer is due (the packet time plus the round trip to the answering sshd at this vantage)
        e_ms = v["expected"]["keystroke_to_echo_ms"]
        dtimes = [r["t"] for r in down]
        echo_d, echo_enter_d, pong_d, pong_sizes, unanswered, other = [], [], [], {}, 0, []
        held = []
        enter_ids = {pk(r) for i, r in enumerate(got) if r is not None and keys[i]["key"] == "Enter"}
        for r in seq:
            h = fwd_hold.get(r["seq"], 0.0) if fwd_hold is not None and vname != "server_edge" else 0.0
            held.append(h)
            lo = max(r["t"] + 1, r["t"] + (e_ms + h - interval / 2) * 1e6)
            j = bisect.bisect_left(dtimes, lo)
            resp = (down[j] if j < len(down) and down[j]["t"] <= r["t"] + (e_ms + h + interval / 2) * 1e6
                    else None)
            if pk(r) in key_ids:
                if resp is not None:
                    (echo_enter_d if pk(r) in enter_ids else echo_d).append((resp["t"] - r["t"]) / 1e6)
            elif resp is None:
                unanswered += 1
            else:
                pong_sizes[resp["len"]] = pong_sizes.get(resp["len"], 0) + 1
                if resp["len"] == size:  # a PONG has the size of a keystroke echo
                    pong_d.append((resp["t"] - r["t"]) / 1e6)
                else:  # e.g. a chaff packet just before the shell's output or the session close
                    other.append((resp["t"] - r["t"]) / 1e6)
        v["chaff_expected"] = n_expected
        resegmented = resegmenting_vantage(truth, vname)
        v["chaff"] = {
            "keystroke_size_class_tcp_payload": size,
            "client_packets_of_size_class_in_interactive_part": len(in_part),
            "keystrokes_typed": len(keys),
            "keystroke_packets_matched": len(matched),
            "chaff_expected": n_expected,
            "interactive_part": {
                "start_ns": start, "end_ns": end,
                "start": "first keystroke packet at this vantage",
                "end": end_text,
                "end_packet_tcp_payload": end_pkt["len"] if end_pkt else None,
            },
            "tcp_retransmissions_left_out": retrans,
            "grid_interval_ms": stats_ms(gaps),
            "bursts": burst_out,
            "server_answer_delay_ms": {
                "what": "client size-class packet at this vantage -> first server data packet after it, within "
                        "half an interval of the expected round trip to the answering sshd "
                        "(vantages.*.expected.keystroke_to_echo_ms)",
                "chaff_to_pong": stats_ms(pong_d),
                "chaff_answer_tcp_payload": {str(k): n for k, n in sorted(pong_sizes.items())},
                "chaff_followed_by_other_output_ms": [r3(x) for x in sorted(other)],
                "chaff_unanswered": unanswered,
                "keystroke_to_echo": stats_ms(echo_d),
                "enter_to_first_output": stats_ms(echo_enter_d),
            },
            "consistent": not problems,
            "problems": problems,
        }
        if fwd_hold is not None and vname != "server_edge":
            v["chaff"]["server_answer_delay_ms"]["socat_hold_towards_server_ms"] = stats_ms(held)
            v["chaff"]["server_answer_delay_ms"]["what"] += (
                "; portfwd: plus the time socat held that packet before sending it towards S (Nagle, measured per "
                "packet from the server-edge capture by TCP sequence number: socat_hold_towards_server_ms); the "
                "delays listed are as seen, hold included")
        if resegmented:
            # socat re-segments the byte stream towards S: a segment here can carry a key and a chaff packet, or
            # two chaff packets, so counting segments does not count chaff. No exact truth here.
            multi = {}
            for r in up:
                if r["len"] > size and r["len"] % size == 0 and start <= r["t"] < end:
                    multi[str(r["len"])] = multi.get(str(r["len"]), 0) + 1
            v["chaff_expected"] = None
            v["chaff_note"] = resegmented
            v["chaff"].update({
                "chaff_expected": None,
                "segments_of_size_class_minus_keystrokes": n_expected,
                "client_segments_of_several_size_class_packets": multi,
                "note": "figures from segments, not ssh packets: not a chaff count (see chaff_note)",
            })
        summary["vantages"][vname] = {"chaff_expected": v["chaff_expected"], "size_class": size,
                                      "grid_median_ms": v["chaff"]["grid_interval_ms"].get("median")}
    return summary
