#!/usr/bin/env python3
"""Write the crafted RDP-over-UDP captures of pcaps/crafted/ (truth: pcaps/crafted/README.md).

The sensor sits between a client 10 ms away (round trip) and a server 40 ms
away. Every datagram is built from the byte layouts of MS-RDPEUDP 2.2.2
(RDPUDP_FEC_HEADER, RDPUDP_SYNDATA_PAYLOAD, RDPUDP_SYNDATAEX_PAYLOAD,
RDPUDP_ACK_VECTOR_HEADER, RDPUDP_SOURCE_PAYLOAD_HEADER; big-endian), the TCP
part from RFC 1006 / X.224 and MS-RDPBCGR 2.2.1.1-2. Microsecond pcap,
Ethernet, IPv4; timestamps are exact.

    python3 scripts/rdpeudp-crafted.py [OUT_DIR]   (default pcaps/crafted)
"""
import os
import struct
import sys

T0 = 1_767_225_600  # 2026-01-01T00:00:00Z
CLIENT, SERVER = "192.0.2.10", "198.51.100.20"
UDP_CPORT, TCP_CPORT, PORT = 50000, 49800, 3389

SYN, ACK, DATA, ACK_DELAYED, SYNEX = 0x0001, 0x0004, 0x0008, 0x0400, 0x1000


def ip4(a):
    return bytes(int(x) for x in a.split("."))


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def ipv4(src, dst, proto, l4, ident):
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), ident, 0x4000, 64, proto, 0, ip4(src), ip4(dst))
    hdr = hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]
    return hdr + l4


def udp(src, sport, dst, dport, payload, ident):
    l4 = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    pseudo = ip4(src) + ip4(dst) + struct.pack("!BBH", 0, 17, len(l4))
    c = csum(pseudo + l4) or 0xFFFF
    l4 = l4[:6] + struct.pack("!H", c) + l4[8:]
    return ipv4(src, dst, 17, l4, ident)


def tcp(src, sport, dst, dport, seq, ack, flags, payload, ident):
    l4 = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0) + payload
    pseudo = ip4(src) + ip4(dst) + struct.pack("!BBH", 0, 6, len(l4))
    l4 = l4[:16] + struct.pack("!H", csum(pseudo + l4)) + l4[18:]
    return ipv4(src, dst, 6, l4, ident)


def ether(ip, to_server):
    c, s = b"\x02\0\0\0\0\x0a", b"\x02\0\0\0\0\x14"
    dst, src = (s, c) if to_server else (c, s)
    return dst + src + b"\x08\x00" + ip


def write(path, frames):
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for ms, frame in frames:
            us = round(ms * 1000)
            f.write(struct.pack("<IIII", T0 + us // 1_000_000, us % 1_000_000, len(frame), len(frame)))
            f.write(frame)


# --- MS-RDPEUDP datagrams -------------------------------------------------


def fec_header(ack, flags):
    return struct.pack("!IHH", ack, 64, flags)


def syn(isn, ack=0xFFFFFFFF, flags=SYN):
    # SYNDATA: snInitialSequenceNumber, uUpStreamMtu, uDownStreamMtu; SYNDATAEX:
    # uSynExFlags (VERSION_INFO_VALID), uUdpVer 2.
    return fec_header(ack, flags | SYNEX) + struct.pack("!IHH", isn, 1232, 1232) + struct.pack("!HH", 1, 2)


def ack_vector():
    # uAckVectorSize 1, one element (state 0 "received", run length 0), padding to 4 bytes.
    return struct.pack("!HB", 1, 0x00) + b"\0"


def pure_ack(ack, extra=0):
    return fec_header(ack, ACK | extra) + ack_vector()


def data(ack, sn, size=100, elements=1):
    # RDPUDP_SOURCE_PAYLOAD_HEADER: snCoded, snSourceStart; then the (encrypted) data. The ACK
    # vector has `elements` run-length entries (its size varies with what was received).
    vector = struct.pack("!H", elements) + bytes(elements)
    vector += bytes(-len(vector) % 4)
    return fec_header(ack, ACK | DATA) + vector + struct.pack("!II", sn, sn) + bytes([0x17]) * size


def udp_flow(t0):
    """(ms, from_client, datagram) of one RDPEUDP flow starting at t0."""
    c_isn, s_isn = 1000, 5000
    out = [(0, True, syn(c_isn)), (40, False, syn(s_isn, c_isn, SYN | ACK)), (50, True, pure_ack(s_isn))]
    for i in range(5):
        base = 100 + 100 * i
        out += [
            (base, False, data(c_isn + i, s_isn + 1 + i)),  # server data
            (base + 10, True, pure_ack(s_isn + 1 + i)),  # client leg: 10 ms
            (base + 20, True, data(s_isn + 1 + i, c_isn + 1 + i)),  # client data
            (base + 60, False, pure_ack(c_isn + 1 + i)),  # server leg: 40 ms
        ]
    out += [
        # Sent twice: no sample (Karn's rule).
        (600, False, data(c_isn + 5, s_isn + 6)),
        (650, False, data(c_isn + 5, s_isn + 6)),
        (660, True, pure_ack(s_isn + 6)),
        # An acknowledgement flagged as delayed: no sample.
        (700, False, data(c_isn + 5, s_isn + 7)),
        (900, True, pure_ack(s_isn + 7, ACK_DELAYED)),
        # An acknowledgement riding on data: no sample; the client's pure ACK of it: 10 ms.
        (1000, True, data(s_isn + 7, c_isn + 6)),
        (1040, False, data(c_isn + 6, s_isn + 8)),
        (1050, True, pure_ack(s_isn + 8)),
    ]
    return [(t0 + ms, c, d) for ms, c, d in out]


def udp_frames(t0, ident):
    frames = []
    for ms, from_client, d in udp_flow(t0):
        ident += 1
        if from_client:
            ip = udp(CLIENT, UDP_CPORT, SERVER, PORT, d, ident)
        else:
            ip = udp(SERVER, PORT, CLIENT, UDP_CPORT, d, ident)
        frames.append((ms, ether(ip, from_client)))
    return frames


# --- The TCP connection ---------------------------------------------------


def tpkt(x224):
    return struct.pack("!BBH", 3, 0, 4 + len(x224)) + x224


def connection_request():
    # X.224 CR (LI, 0xE0, dst-ref, src-ref, class), cookie, RDP_NEG_REQ: TLS | CredSSP.
    body = b"Cookie: mstshash=alice\r\n" + struct.pack("<BBHI", 1, 0, 8, 3)
    return tpkt(bytes([6 + len(body), 0xE0, 0, 0, 0, 0, 0]) + body)


def connection_confirm():
    # X.224 CC with RDP_NEG_RSP: selected protocol TLS (1).
    body = struct.pack("<BBHI", 2, 0, 8, 1)
    return tpkt(bytes([6 + len(body), 0xD0, 0, 0, 0x12, 0x34, 0]) + body)


def tcp_frames(fin=3000):
    """A TCP RDP connection (10 ms client leg, 40 ms server leg) closed at `fin` ms."""
    c, s = 100_000, 900_000
    cr, cc = connection_request(), connection_confirm()
    hello = bytes([0x16, 3, 1, 0, 60]) + bytes(60)
    F, SY, A, P = 0x01, 0x02, 0x10, 0x08
    seg = [
        (0, True, c, 0, SY, b""),
        (40, False, s, c + 1, SY | A, b""),
        (50, True, c + 1, s + 1, A, b""),
        (50, True, c + 1, s + 1, P | A, cr),
        (90, False, s + 1, c + 1 + len(cr), P | A, cc),
        (100, True, c + 1 + len(cr), s + 1 + len(cc), A, b""),
        (100, True, c + 1 + len(cr), s + 1 + len(cc), P | A, hello),
        (140, False, s + 1 + len(cc), c + 1 + len(cr) + len(hello), A, b""),
        (fin, True, c + 1 + len(cr) + len(hello), s + 1 + len(cc), F | A, b""),
        (fin + 40, False, s + 1 + len(cc), c + 2 + len(cr) + len(hello), F | A, b""),
        (fin + 50, True, c + 2 + len(cr) + len(hello), s + 2 + len(cc), A, b""),
    ]
    frames = []
    for i, (ms, from_client, sq, ak, fl, pl) in enumerate(seg):
        if from_client:
            ip = tcp(CLIENT, TCP_CPORT, SERVER, PORT, sq, ak, fl, pl, 500 + i)
        else:
            ip = tcp(SERVER, PORT, CLIENT, TCP_CPORT, sq, ak, fl, pl, 500 + i)
        frames.append((ms, ether(ip, from_client)))
    return frames


# --- A session typed over its UDP transport ---------------------------------

KEY, ACK_SIZE, FRAME = 41, 71, (45, 1100, 45)  # TLS record sizes: key event, Frame Acknowledge, a frame


class Tcp:
    """One TCP connection seen at the sensor: each side acknowledges what reached it."""

    def __init__(self, cport, c_one_way, s_one_way):
        self.cport, self.ow = cport, {True: c_one_way, False: s_one_way}
        self.seq = {True: 300_000, False: 700_000}
        self.sent = {True: [], False: []}  # (sensor ms, end)
        self.frames = []

    def seg(self, ms, from_client, payload=b"", flags=0x10):
        sq = self.seq[from_client]
        other = self.sent[not from_client]
        lag = self.ow[True] + self.ow[False]
        ends = [e for t, e in other if t + lag <= ms]
        ack = max(ends) if ends else self.isn[not from_client] + 1
        step = len(payload) + (1 if flags & 0x03 else 0)
        self.seq[from_client] = sq + step
        if payload:
            self.sent[from_client].append((ms, sq + step))
        if from_client:
            ip = tcp(CLIENT, self.cport, SERVER, PORT, sq, ack if flags != 0x02 else 0, flags, payload, 0)
        else:
            ip = tcp(SERVER, PORT, CLIENT, self.cport, sq, ack, flags, payload, 0)
        self.frames.append((ms, ether(ip, from_client)))

    def open(self, t):
        self.isn = dict(self.seq)
        rtt = 2 * (self.ow[True] + self.ow[False])
        self.seg(t, True, flags=0x02)
        self.seg(t + 2 * self.ow[False], False, flags=0x12)
        self.seg(t + rtt / 2, True)


def typed_session(tcp_leg_ms, udp_client_ms, ports, keys=30):
    """An RDP session whose TCP connection's client leg is `tcp_leg_ms` (round trip from the sensor)
    and whose UDP transport reaches the client `udp_client_ms` away (more behind a relay that carries
    both), the server 40 ms away: the connection sequence over TCP, then `keys` keys typed over UDP.
    Times in ms from the capture's start; the server draws a key 5 ms after it arrives (`FRAME`), the
    client acknowledges a frame 0.5 ms after its last datagram arrives. `ports`: the client's TCP and UDP
    ports (each capture its own, so its sessions' uids are its own)."""
    s_ow, c_ow, u_ow = 20.0, tcp_leg_ms / 2, udp_client_ms / 2
    tcp_port, udp_port = ports
    c = Tcp(tcp_port, c_ow, s_ow)
    c.open(0)
    t = 2 * (c_ow + s_ow)
    req = lambda n: bytes([0x17]) * n  # noqa: E731
    c.seg(t, True, connection_request(), 0x18)
    c.seg(t + 2 * s_ow + 2, False, connection_confirm(), 0x18)
    # The TLS handshake, the MCS connect, Attach User and six Channel Joins, each answered at once.
    t += 2 * (c_ow + s_ow) + 2
    for q, a, work in [(300, 1300, 1), (80, 250, 0.2), (480, 130, 10), (64, 33, 0.1)] + [(34, 37, 0.1)] * 6:
        c.seg(t, True, req(q), 0x18)
        c.seg(t + 2 * s_ow + work, False, req(a), 0x18)
        t += 2 * (c_ow + s_ow) + work + 1
    for i in range(5):  # the first screen
        c.seg(t + 0.1 * i, False, req(1200), 0x18)
    t += 2 * (c_ow + s_ow) + 10
    c.seg(t, True)
    frames = list(c.frames)
    # The UDP transport: SYN exchange, its TLS handshake and first screen, then the keys. Events
    # first (sensor time, from client, data size or None for a pure ACK, ACK vector elements), then
    # numbered in time order, each acknowledging what reached its sender.
    cs, ss = 20_000, 90_000  # initial sequence numbers
    t += 100
    out = [(t, True, syn(cs)), (t + 2 * s_ow, False, syn(ss, cs, SYN | ACK)), (t + 2 * s_ow + 2 * u_ow, True, pure_ack(ss))]
    t += 2 * (s_ow + u_ow) + 1
    ev = [(t, True, 300, 1)]
    ev += [(t + 2 * s_ow + 1 + 0.1 * i, False, size, 1) for i, size in enumerate((1100, 1100, 600))]
    t += 2 * (s_ow + u_ow) + 2
    ev += [(t, True, 57, 1), (t + 2 * s_ow + 0.1, False, 37, 1)]
    ev += [(t + 2 * s_ow + 1 + 0.1 * i, False, 1100, 1) for i in range(4)]
    ev.append((t + 2 * (s_ow + u_ow) + 1.5, True, None, 1))
    t += 2 * (s_ow + u_ow) + 500
    gaps = [180, 260, 340, 220, 300, 400, 240, 280, 200, 360]
    for k in range(keys):
        frame_at = t + 2 * s_ow + 5
        ev.append((t, True, KEY, 1 + k % 3))  # the press
        ev += [(frame_at + 0.1 * j, False, size, 1 + k % 2) for j, size in enumerate(FRAME)]
        ev.append((frame_at + 0.2 + 2 * u_ow + 0.5, True, ACK_SIZE, 1))  # the Frame Acknowledge
        ev.append((t + 90, True, KEY, 1))  # the release
        ev.append((t + 90 + 2 * s_ow, False, None, 1))
        t += 90 + gaps[k % len(gaps)]
    last = {True: cs, False: ss}
    sent = {True: [], False: []}
    for ms, from_client, size, elements in sorted(ev, key=lambda e: e[0]):
        lag = 2 * (u_ow if from_client else s_ow)
        got = max([sn for at, sn in sent[not from_client] if at + lag <= ms], default=last[not from_client] - len(sent[not from_client]))
        if size is None:
            out.append((ms, from_client, pure_ack(got)))
            continue
        last[from_client] += 1
        sent[from_client].append((ms, last[from_client]))
        out.append((ms, from_client, data(got, last[from_client], size, elements)))
    for ms, from_client, d in out:
        ip = udp(CLIENT, udp_port, SERVER, PORT, d, 0) if from_client else udp(SERVER, PORT, CLIENT, udp_port, d, 0)
        frames.append((ms, ether(ip, from_client)))
    c.frames = []
    c.seg(t + 1000, True, flags=0x11)
    c.seg(t + 1000 + 2 * s_ow, False, flags=0x11)
    c.seg(t + 1000 + 2 * (s_ow + c_ow), True)
    frames += c.frames
    return sorted(frames, key=lambda f: f[0])


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "pcaps", "crafted")
    write(os.path.join(out, "rdpeudp-alone.pcap"), udp_frames(0, 0))
    both = sorted(tcp_frames() + udp_frames(200, 0), key=lambda f: f[0])
    write(os.path.join(out, "rdp-tcp-udp.pcap"), both)
    # The TCP connection closes at 300 ms; its UDP flow sends one more ACK at
    # 7 s, after the connection's record was written (5 s after its FIN).
    late = udp_frames(200, 0)
    late.append((7000, late[-1][1]))
    write(os.path.join(out, "rdp-udp-outlives-tcp.pcap"), sorted(tcp_frames(300) + late, key=lambda f: f[0]))
    # Typed over UDP: the client 10 ms away on both transports; then behind a relay that ends
    # the TCP connection 10 ms away and forwards the UDP transport to the client 70 ms away.
    write(os.path.join(out, "rdp-udp-typing.pcap"), typed_session(10, 10, (49810, 50010)))
    write(os.path.join(out, "rdp-udp-typing-relay.pcap"), typed_session(10, 70, (49820, 50020)))
    # The UDP transport of the first alone (its TCP connection not captured).
    alone = [f for f in typed_session(10, 10, (49830, 50030)) if f[1][23] == 17]
    write(os.path.join(out, "rdp-udp-typing-alone.pcap"), alone)


if __name__ == "__main__":
    main()
