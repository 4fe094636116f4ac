"""Reading the VPN lab's captures (nanosecond pcap, Ethernet, IPv4) and the tunnels' own messages in them: which
outer packets carry tunnel data, and which are a tunnel's request/answer control messages (with the fields that
pair an answer with its request). Used by lab_vpn_truth.py."""

import struct
from collections import namedtuple

Pkt = namedtuple("Pkt", "i t src dst proto sport dport plen pl seq ack flags")

# OpenVPN opcodes (ssl_pkt.h)
OVPN_OP = {1: "CONTROL_HARD_RESET_CLIENT_V1", 2: "CONTROL_HARD_RESET_SERVER_V1", 3: "CONTROL_SOFT_RESET_V1",
           4: "CONTROL_V1", 5: "ACK_V1", 6: "DATA_V1", 7: "CONTROL_HARD_RESET_CLIENT_V2",
           8: "CONTROL_HARD_RESET_SERVER_V2", 9: "DATA_V2", 10: "CONTROL_HARD_RESET_CLIENT_V3", 11: "CONTROL_WKC_V1"}
OVPN_HMAC = 32  # --auth SHA256
IKE_EXCH = {34: "IKE_SA_INIT", 35: "IKE_AUTH", 36: "CREATE_CHILD_SA", 37: "INFORMATIONAL"}


def read_pcap(path):
    """Every IPv4 TCP/UDP packet of a nanosecond (or microsecond) Ethernet pcap."""
    data = open(path, "rb").read()
    magic = struct.unpack("<I", data[:4])[0]
    scale = 1 if magic == 0xA1B23C4D else 1000
    off, out = 24, []
    n = 0
    while off + 16 <= len(data):
        sec, frac, incl, _orig = struct.unpack("<IIII", data[off:off + 16])
        frame = data[off + 16:off + 16 + incl]
        off += 16 + incl
        n += 1
        if len(frame) < 34 or frame[12:14] != b"\x08\x00":
            continue
        ip = frame[14:]
        ihl = (ip[0] & 15) * 4
        total = struct.unpack("!H", ip[2:4])[0]
        proto = ip[9]
        src, dst = ".".join(map(str, ip[12:16])), ".".join(map(str, ip[16:20]))
        t = sec * 1_000_000_000 + frac * scale
        l4 = ip[ihl:]
        if proto == 17 and len(l4) >= 8:
            sp, dp, ulen = struct.unpack("!HHH", l4[:6])
            out.append(Pkt(n, t, src, dst, "udp", sp, dp, ulen - 8, bytes(l4[8:]), None, None, None))
        elif proto == 6 and len(l4) >= 20:
            sp, dp, seq, ack = struct.unpack("!HHII", l4[:12])
            hl = (l4[12] >> 4) * 4
            out.append(Pkt(n, t, src, dst, "tcp", sp, dp, total - ihl - hl, bytes(l4[hl:]), seq, ack, l4[13]))
    return out


def identity(p):
    """What makes one packet recognisable at two vantages: its addresses, length and the bytes captured (tunnel
    packets carry counters or nonces, so no two are alike)."""
    return (p.src, p.dst, p.proto, p.sport, p.dport, p.plen, p.seq, p.ack, p.pl[:80])


# ------------------------------------------------------------------------------------------------------------------
# Tunnel messages
# ------------------------------------------------------------------------------------------------------------------


def ovpn_frames(p):
    """OpenVPN packets in one outer packet: the UDP payload, or the length-prefixed frames of a TCP segment (as
    captured) when the segment is whole frames whose headers are all captured; None when that is not known (a
    segment of a bulk stream, cut anywhere)."""
    if p.proto == "udp":
        return [p.pl]
    out, i = [], 0
    while i < p.plen:
        if i + 3 > len(p.pl):
            return None
        n = struct.unpack("!H", p.pl[i:i + 2])[0]
        out.append(p.pl[i + 2:i + 2 + n])
        i += 2 + n
    return out if i == p.plen else None


def ovpn_control(frame, wrapped="tls-auth"):
    """(opcode name, session id, own message id or None, [acked ids], remote session id) of a tls-auth control
    packet; with tls-crypt only the opcode and session id are in the clear."""
    op = frame[0] >> 3
    name = OVPN_OP.get(op, str(op))
    if op in (6, 9) or len(frame) < 9:
        return None
    sid = frame[1:9].hex()
    if wrapped != "tls-auth":
        return name, sid, None, [], None
    o = 9 + OVPN_HMAC + 8  # HMAC, packet id and time (replay protection)
    if len(frame) < o + 1:
        return name, sid, None, [], None
    n = frame[o]
    if len(frame) < o + 1 + 4 * n + (8 if n else 0):
        return name, sid, None, [], None  # header beyond the snap length
    acks = [struct.unpack("!I", frame[o + 1 + 4 * k:o + 5 + 4 * k])[0] for k in range(n)]
    o += 1 + 4 * n
    rsid = None
    if n:
        rsid = frame[o:o + 8].hex()
        o += 8
    mid = struct.unpack("!I", frame[o:o + 4])[0] if op != 5 and len(frame) >= o + 4 else None
    return name, sid, mid, acks, rsid


def ike(p):
    """(exchange, spi_i, msg id, is_response, flags) of an IKE message in UDP 500 or 4500, else None."""
    if p.proto != "udp" or 500 not in (p.sport, p.dport) and 4500 not in (p.sport, p.dport):
        return None
    pl = p.pl
    if 4500 in (p.sport, p.dport):
        if len(pl) < 4 or pl[:4] != b"\0\0\0\0":
            return None
        pl = pl[4:]
    if len(pl) < 28:
        return None
    exch, flags = pl[18], pl[19]
    return IKE_EXCH.get(exch, str(exch)), pl[:8].hex(), struct.unpack("!I", pl[20:24])[0], bool(flags & 0x20), flags


def is_data(kind, p):
    """Whether an outer packet carries tunnel data (an inner IP packet), not a control message or keepalive."""
    if kind == "wireguard":
        return p.proto == "udp" and p.pl[:1] == b"\x04" and p.plen > 32
    if kind.startswith("openvpn"):
        if p.proto == "tcp":
            fr = ovpn_frames(p)
            return p.plen > 0 and (fr is None or any(f and f[0] >> 3 in (6, 9) for f in fr))
        return p.pl and p.pl[0] >> 3 in (6, 9)
    if kind == "ipsec":
        return p.proto == "udp" and 4500 in (p.sport, p.dport) and p.plen > 1 and p.pl[:4] != b"\0\0\0\0"
    if kind == "anyconnect":  # DTLS application data (or CSTP over TLS when DTLS is down)
        return p.plen > 0 and p.pl[:1] == b"\x17"
    return False


def requests_answers(kind, pkts, a, b, wrapped="tls-auth"):
    """The tunnel's request -> answer pairs where `a` asks and `b` answers, in one capture:
    [(t_request, t_answer, what, request frame, answer frame)]."""
    pairs = []
    ab = [p for p in pkts if p.src == a and p.dst == b]
    ba = [p for p in pkts if p.src == b and p.dst == a]
    if kind == "wireguard":
        inits = {p.pl[4:8]: p for p in ab if p.pl[:1] == b"\x01"}
        for r in ba:
            if r.pl[:1] == b"\x02" and r.pl[8:12] in inits:
                q = inits.pop(r.pl[8:12])
                pairs.append((q.t, r.t, "handshake initiation -> response", q.i, r.i))
    elif kind == "ipsec":
        reqs = {}
        for q in ab:
            m = ike(q)
            if m and not m[3]:
                reqs[(m[1], m[2])] = (q, m[0])
        for r in ba:
            m = ike(r)
            if m and m[3] and (m[1], m[2]) in reqs:
                q, what = reqs.pop((m[1], m[2]))
                pairs.append((q.t, r.t, f"{what} request -> response", q.i, r.i))
    elif kind.startswith("openvpn") and wrapped == "tls-auth":
        reqs = {}
        for q in ab:
            for f in ovpn_frames(q) or []:
                c = ovpn_control(f)
                if c and c[2] is not None:
                    reqs.setdefault((c[1], c[2]), (q, c[0]))
        for r in ba:
            for f in ovpn_frames(r) or []:
                c = ovpn_control(f)
                for mid in (c[3] if c else []):
                    if (c[4], mid) in reqs:
                        q, what = reqs.pop((c[4], mid))
                        pairs.append((q.t, r.t, f"{what} -> acknowledged in {c[0]}", q.i, r.i))
        # OpenVPN 2.6 renegotiates under dynamic tls-crypt (a key exported from the first TLS session): ids and
        # acks are encrypted then, so such a request pairs with the answering side's next control-channel packet
        ctl = [p for p in ba if p.pl and p.pl[0] >> 3 in (3, 4, 5)]
        for q in ab:
            c = ovpn_control(q.pl) if q.pl else None
            if c and c[0] in ("CONTROL_V1", "CONTROL_SOFT_RESET_V1") and c[2] is None:
                r = next((p for p in ctl if p.t > q.t), None)
                if r and r.t - q.t < 1e9:
                    pairs.append((q.t, r.t, f"{c[0]} (encrypted, dynamic tls-crypt) -> next control packet "
                                  f"{ovpn_control(r.pl)[0]} (timing)", q.i, r.i))
    elif kind in ("openvpn-tcp", "anyconnect"):
        # openvpn-tcp (tls-crypt: control packets encrypted) and AnyConnect's CSTP over TLS: the answer is the
        # other side's TCP ACK of the segment
        pend = []
        for p in sorted(ab + ba, key=lambda p: p.t):
            if p.proto != "tcp":
                continue
            if p.src == a and p.plen > 0 and kind == "anyconnect":
                pend.append((p, f"TLS record type {p.pl[0]}"))
            elif p.src == a and p.plen > 0:
                ops = [OVPN_OP.get(f[0] >> 3, "?") for f in ovpn_frames(p) or [] if f]
                if ops and all(o not in ("DATA_V2", "DATA_V1") for o in ops):
                    pend.append((p, "+".join(ops)))
            elif p.src == b and pend:
                done = [(q, w) for q, w in pend if (p.ack - q.seq - q.plen) % 2**32 < 2**31]
                for q, w in done:
                    pairs.append((q.t, p.t, f"{w} (TCP segment) -> TCP ACK", q.i, p.i))
                pend = [x for x in pend if x not in done]
    return sorted(pairs)
