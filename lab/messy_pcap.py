"""Capture helpers for lab/messy.py: slim a pcap, read TCP connections and SSH banners with tshark, and measure
keystroke packets, handshakes and echoes (Python 3.11 standard library; tshark for the readings)."""

import struct
import subprocess
from pathlib import Path

PCAP_MAGICS = {0xA1B2C3D4: "us", 0xA1B23C4D: "ns"}
LINKTYPE_ETHERNET = 1


def _tcp_key(data):
    """(connection key, SYN without ACK) of an Ethernet/IPv4/TCP frame, else (None, False)."""
    if len(data) < 14 + 20 or data[12:14] != b"\x08\x00":
        return None, False
    ip = 14
    ihl = (data[ip] & 0x0F) * 4
    if data[ip + 9] != 6 or len(data) < ip + ihl + 14:
        return None, False
    src, dst = data[ip + 12:ip + 16], data[ip + 16:ip + 20]
    sport, dport = struct.unpack("!HH", data[ip + ihl:ip + ihl + 4])
    flags = data[ip + ihl + 13]
    a, b = (src, sport), (dst, dport)
    return (min(a, b), max(a, b)), bool(flags & 0x02) and not flags & 0x10


def slim_pcap(src, dst, keep_first=40, snap=96):
    """Copy a classic pcap, keeping every byte of the first `keep_first` packets of each TCP connection (SSH banners,
    KEXINIT, NEWKEYS in clear) and cutting every later packet to `snap` captured bytes (orig_len unchanged), as
    `tcpdump -s 96` would. A SYN without ACK starts a new connection. Non-TCP frames are kept whole.
    Returns {"packets", "cut", "bytes_in", "bytes_out"}."""
    raw = Path(src).read_bytes()
    magic_le = struct.unpack("<I", raw[:4])[0]
    if magic_le in PCAP_MAGICS:
        e = "<"
    elif struct.unpack(">I", raw[:4])[0] in PCAP_MAGICS:
        e = ">"
    else:
        raise ValueError(f"{src}: not a classic pcap")
    linktype = struct.unpack(e + "I", raw[20:24])[0]
    out = bytearray(raw[:24])  # global header unchanged (magic keeps the nanosecond resolution)
    counts = {}
    pos, n, cut = 24, 0, 0
    while pos + 16 <= len(raw):
        ts1, ts2, incl, orig = struct.unpack(e + "IIII", raw[pos:pos + 16])
        data = raw[pos + 16:pos + 16 + incl]
        pos += 16 + incl
        n += 1
        if linktype == LINKTYPE_ETHERNET:
            key, syn = _tcp_key(data)
            if key is not None:
                if syn:
                    counts[key] = 0
                seen = counts.get(key, 0)
                counts[key] = seen + 1
                if seen >= keep_first and incl > snap:
                    data, incl = data[:snap], snap
                    cut += 1
        out += struct.pack(e + "IIII", ts1, ts2, incl, orig) + data
    Path(dst).write_bytes(out)
    return {"packets": n, "cut_to_snap": cut, "bytes_in": len(raw), "bytes_out": len(out)}


# ------------------------------------------------------------------------------------------------ tshark readings

TCP_FIELDS = ["frame.time_epoch", "ip.src", "tcp.srcport", "ip.dst", "tcp.dstport", "tcp.stream", "tcp.flags.syn",
              "tcp.flags.ack", "tcp.len", "ip.ttl", "tcp.flags.fin", "tcp.flags.reset", "tcp.analysis.retransmission"]


def epoch_ns(s):
    whole, _, frac = s.partition(".")
    return int(whole) * 1_000_000_000 + int((frac + "000000000")[:9])


def tshark_fields(pcap, fields, display_filter):
    cmd = ["tshark", "-n", "-r", str(pcap), "-Y", display_filter, "-T", "fields", "-E", "separator=|",
           "-E", "occurrence=f"]
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout
    return [line.split("|") for line in out.splitlines() if line.count("|") == len(fields) - 1]


def read_tcp(pcap):
    rows = []
    for v in tshark_fields(pcap, TCP_FIELDS, "tcp"):
        rows.append({
            "t": epoch_ns(v[0]), "src": v[1], "sport": int(v[2]), "dst": v[3], "dport": int(v[4]),
            "stream": int(v[5]), "syn": v[6] in ("1", "True"), "ack": v[7] in ("1", "True"), "len": int(v[8] or 0),
            "ttl": v[9], "fin": v[10] in ("1", "True"), "rst": v[11] in ("1", "True"), "retrans": v[12] != "",
        })
    return rows


def connections(rows, server_ports):
    """TCP connections to the given server ports (by SYN), in SYN order, with their handshake and end."""
    streams = {}
    for r in rows:
        streams.setdefault(r["stream"], []).append(r)
    conns = []
    for sid, pk in streams.items():
        syn = next((r for r in pk if r["syn"] and not r["ack"]), None)
        if syn is None or syn["dport"] not in server_ports:
            continue
        synack = next((r for r in pk if r["syn"] and r["ack"] and r["t"] >= syn["t"]), None)
        ack = next((r for r in pk if synack and not r["syn"] and r["ack"] and r["src"] == syn["src"]
                    and r["t"] >= synack["t"]), None)
        c2s = [r for r in pk if r["src"] == syn["src"] and r["sport"] == syn["sport"]]
        s2c = [r for r in pk if r["src"] == syn["dst"] and r["sport"] == syn["dport"]]
        conns.append({
            "stream": sid, "client": f"{syn['src']}:{syn['sport']}", "server": f"{syn['dst']}:{syn['dport']}",
            "client_ip": syn["src"], "client_port": syn["sport"], "server_ip": syn["dst"], "server_port": syn["dport"],
            "syn_ns": syn["t"], "end_ns": pk[-1]["t"],
            "server_leg_ms": (synack["t"] - syn["t"]) / 1e6 if synack else None,
            "client_leg_ms": (ack["t"] - synack["t"]) / 1e6 if ack else None,
            "packets": {"client": len(c2s), "server": len(s2c)},
            "bytes_tcp_payload": {"client": sum(r["len"] for r in c2s), "server": sum(r["len"] for r in s2c)},
            "ttl": {"client_to_server": sorted({r["ttl"] for r in c2s}), "server_to_client": sorted({r["ttl"] for r in s2c})},
            "retransmissions": sum(1 for r in pk if r["retrans"]),
        })
    conns.sort(key=lambda c: c["syn_ns"])
    return conns


def ssh_banners_and_algorithms(pcap):
    """Per TCP stream: client and server SSH banners, and the negotiated kex and cipher (client's first choice that
    the server offers, from the two KEXINITs)."""
    out = {}
    for v in tshark_fields(pcap, ["tcp.stream", "tcp.srcport", "tcp.dstport", "ssh.protocol"], "ssh.protocol"):
        s = out.setdefault(int(v[0]), {})
        # the side whose port is the lower one in our lab is the server (22); ephemeral ports are > 1024
        s["server_banner" if int(v[1]) < int(v[2]) else "client_banner"] = v[3]
    fields = ["tcp.stream", "tcp.srcport", "tcp.dstport", "ssh.kex_algorithms", "ssh.encryption_algorithms_client_to_server"]
    for v in tshark_fields(pcap, fields, "ssh.message_code == 20"):
        s = out.setdefault(int(v[0]), {})
        side = "server" if int(v[1]) < int(v[2]) else "client"
        s[f"{side}_kex"] = v[3].split(",")
        s[f"{side}_ciphers"] = v[4].split(",")
    for s in out.values():
        for what, key in (("kex", "kex"), ("cipher", "ciphers")):
            c, sv = s.pop(f"client_{key}", None), s.pop(f"server_{key}", None)
            if c and sv:
                s[what] = next((a for a in c if a in sv), None)
    return out


def first_packet_after(data_rows, t_ns, src_ip, src_port):
    """First TCP data packet from src_ip:src_port at or after t_ns (rows sorted by time), or None."""
    for r in data_rows:
        if r["t"] >= t_ns and r["src"] == src_ip and r["sport"] == src_port:
            return r
    return None


def echo_samples(data_rows, keys, from_ip, from_port, to_ip, to_port, window_ns=150_000_000):
    """Keystroke packet (from -> to, first data packet at or after each key's write, within window_ns of the write
    as seen from that side) to the first data packet back: delays in ms."""
    out = []
    fwd = [r for r in data_rows if r["src"] == from_ip and r["sport"] == from_port and r["dport"] == to_port]
    back = [r for r in data_rows if r["src"] == to_ip and r["sport"] == to_port and r["dport"] == from_port]
    j = 0
    for k in keys:
        up = next((r for r in fwd if r["t"] >= k["t_ns"]), None)
        if up is None or up["t"] - k["t_ns"] > window_ns:
            continue
        while j < len(back) and back[j]["t"] <= up["t"]:
            j += 1
        if j < len(back):
            out.append((back[j]["t"] - up["t"]) / 1e6)
    return out


def median(vals):
    v = sorted(vals)
    return v[len(v) // 2] if v else None


def pctl(vals, q):
    v = sorted(vals)
    if not v:
        return None
    return v[min(len(v) - 1, max(0, round(q / 100 * (len(v) - 1))))]


# ------------------------------------------------------------------------------------- one-way delay between edges

OWD_FIELDS = ["frame.time_epoch", "ip.src", "tcp.srcport", "ip.dst", "tcp.dstport", "tcp.seq_raw", "tcp.ack_raw",
              "tcp.len", "ip.id", "tcp.flags"]


def _owd_rows(pcap):
    out = {}
    for v in tshark_fields(pcap, OWD_FIELDS, "tcp"):
        key = tuple(v[1:])
        out.setdefault(key, epoch_ns(v[0]))  # the first copy (a retransmission has another ip.id)
    return out


def one_way_delays(typist_pcap, server_pcap, client_ip):
    """Every TCP packet seen at both edges: (time at the sender's edge ns, "c2s"/"s2c", tcp.len, one-way ms).
    Both captures share this machine's clock, so the delay between the edges is measured exactly."""
    te, se = _owd_rows(typist_pcap), _owd_rows(server_pcap)
    out = []
    for key, t1 in te.items():
        t2 = se.get(key)
        if t2 is None:
            continue
        c2s = key[0] == client_ip
        out.append((t1 if c2s else t2, "c2s" if c2s else "s2c", int(key[6] or 0), ((t2 - t1) if c2s else (t1 - t2)) / 1e6))
    out.sort()
    return out


def bulk_windows(rows, min_packets=20, full=1000, gap_ns=100_000_000, margin_ns=100_000_000):
    """Time windows of bulk traffic in one capture: runs of >= min_packets TCP segments of >= `full` bytes with
    gaps < gap_ns, widened by margin_ns on each side. Returns [(start_ns, end_ns, packets, bytes)]."""
    big = sorted((r["t"], r["len"]) for r in rows if r["len"] >= full)
    runs, cur = [], []
    for t, n in big:
        if cur and t - cur[-1][0] >= gap_ns:
            runs.append(cur)
            cur = []
        cur.append((t, n))
    if cur:
        runs.append(cur)
    return [(r[0][0] - margin_ns, r[-1][0] + margin_ns, len(r), sum(n for _, n in r)) for r in runs
            if len(r) >= min_packets]


def merge_windows(wins):
    """Union of (start, end, packets, bytes) windows, overlapping ones merged (packets and bytes added)."""
    out = []
    for a, b, n, nb in sorted(wins):
        if out and a <= out[-1][1]:
            pa, pb, pn, pnb = out[-1]
            out[-1] = (pa, max(pb, b), pn + n, pnb + nb)
        else:
            out.append((a, b, n, nb))
    return out
