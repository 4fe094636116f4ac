#!/usr/bin/env python3
"""Write the crafted tunnel captures of pcaps/crafted/ (truth: pcaps/crafted/README.md).

The sensor sits between a client 10 ms away (round trip) and a gateway 40 ms
away: whoever asks, the answer comes back after the answering side's leg.
WireGuard messages follow the WireGuard paper's layouts (sizes 148, 92, 64,
16 + 16n; little-endian indices), IKEv2 headers RFC 7296 3.1 (behind the
non-ESP marker on 4500, RFC 3948), ESP RFC 4303 (SPI, sequence number),
OpenVPN's control packets its reliability layer (opcode/key id, session id,
tls-auth HMAC, replay packet-id and time, ack array, remote session id,
message packet-id; over TCP behind a 16-bit length). Packet helpers and the
pcap writer are scripts/rdpeudp-crafted.py's.

    python3 scripts/tunnel-crafted.py [OUT_DIR]   (default pcaps/crafted)
"""
import importlib.util
import os
import struct
import sys

_spec = importlib.util.spec_from_file_location("rdpeudp_crafted", os.path.join(os.path.dirname(__file__), "rdpeudp-crafted.py"))
rc = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rc)

CLIENT, ROAMED, GW = "192.0.2.10", "198.51.100.7", "203.0.113.1"
C_LEG, S_LEG = 10, 40


class Capture:
    def __init__(self):
        self.frames, self.ident = [], 0

    def udp(self, ms, src, dst, payload):
        self.ident += 1
        ip = rc.udp(src[0], src[1], dst[0], dst[1], payload, self.ident)
        self.frames.append((ms, rc.ether(ip, dst[0] == GW)))

    def esp(self, ms, src, dst, spi, seq):
        self.ident += 1
        ip = rc.ipv4(src, dst, 50, struct.pack("!II", spi, seq) + b"\xab" * 64, self.ident)
        self.frames.append((ms, rc.ether(ip, dst == GW)))

    def tcp(self, ms, src, dst, seq, ack, flags, payload=b""):
        self.ident += 1
        ip = rc.tcp(src[0], src[1], dst[0], dst[1], seq, ack, flags, payload, self.ident)
        self.frames.append((ms, rc.ether(ip, dst[0] == GW)))

    def write(self, path):
        rc.write(path, sorted(self.frames, key=lambda f: f[0]))


# --- WireGuard --------------------------------------------------------------


def wg_init(sender):
    return struct.pack("<B3xI", 1, sender) + b"\x11" * 140


def wg_resp(sender, receiver):
    return struct.pack("<B3xII", 2, sender, receiver) + b"\x22" * 80


def wg_data(receiver, counter, inner=64):
    return struct.pack("<B3xIQ", 4, receiver, counter) + b"\x33" * (inner + 16)


def wireguard_roaming():
    """Handshake on Wi-Fi (client initiates: server leg), data both ways and a
    keepalive, the laptop moves to LTE (its data names the gateway's index 0x22),
    the gateway re-keys on the new path (client leg), data under the new keys."""
    c = Capture()
    wifi, lte, gw = (CLIENT, 40000), (ROAMED, 61000), (GW, 51820)
    c.udp(0, wifi, gw, wg_init(0x11))
    c.udp(S_LEG, gw, wifi, wg_resp(0x22, 0x11))
    for i in range(5):
        c.udp(100 + 100 * i, wifi, gw, wg_data(0x22, i))
        c.udp(100 + 100 * i + S_LEG, gw, wifi, wg_data(0x11, i))
    c.udp(700, wifi, gw, wg_data(0x22, 5, inner=0))  # keepalive: 32 bytes
    for i in range(5):
        c.udp(10_000 + 100 * i, lte, gw, wg_data(0x22, 6 + i))
        c.udp(10_000 + 100 * i + S_LEG, gw, lte, wg_data(0x11, 5 + i))
    c.udp(20_000, gw, lte, wg_init(0x33))
    c.udp(20_000 + C_LEG, lte, gw, wg_resp(0x44, 0x33))
    c.udp(20_100, lte, gw, wg_data(0x33, 0))
    c.udp(20_100 + S_LEG, gw, lte, wg_data(0x44, 0))
    return c


# --- IKEv2, NAT-T, ESP --------------------------------------------------------

ISPI, RSPI = 0x5A17_C0DE_0000_0001, 0x9E5B_0000_0000_0002
IKE_SA_INIT, IKE_AUTH, CREATE_CHILD_SA, INFORMATIONAL = 34, 35, 36, 37
INITIATOR, RESPONSE = 0x08, 0x20


def ike(exchange, flags, msgid, body=64, rspi=RSPI):
    return struct.pack("!QQBBBBII", ISPI, rspi, 33, 0x20, exchange, flags, msgid, 28 + body) + b"\x44" * body


def ipsec_natt():
    """IKE_SA_INIT on 500 (server leg), NAT detected: IKE_AUTH on 4500, ESP in
    UDP both ways, NAT keepalives, two dead-peer checks by the gateway (its own
    message ids 0, 1: client leg), one by the client (message id 2: server
    leg), a CREATE_CHILD_SA re-key by the client (message id 3)."""
    c = Capture()
    c500, g500, c4500, g4500 = (CLIENT, 500), (GW, 500), (CLIENT, 4500), (GW, 4500)
    nat = b"\0\0\0\0"
    c.udp(0, c500, g500, ike(IKE_SA_INIT, INITIATOR, 0, rspi=0))
    c.udp(S_LEG, g500, c500, ike(IKE_SA_INIT, RESPONSE, 0))
    c.udp(100, c4500, g4500, nat + ike(IKE_AUTH, INITIATOR, 1))
    c.udp(100 + S_LEG, g4500, c4500, nat + ike(IKE_AUTH, RESPONSE, 1))
    for i in range(10):
        c.udp(200 + 100 * i, c4500, g4500, struct.pack("!II", 0xC0000001, i + 1) + b"\x55" * 80)
        c.udp(200 + 100 * i + S_LEG, g4500, c4500, struct.pack("!II", 0xC0000002, i + 1) + b"\x55" * 80)
    c.udp(1500, c4500, g4500, b"\xff")
    c.udp(21_500, c4500, g4500, b"\xff")
    for t, msgid in ((2000, 0), (12_000, 1)):
        c.udp(t, g4500, c4500, nat + ike(INFORMATIONAL, 0, msgid, body=0))
        c.udp(t + C_LEG, c4500, g4500, nat + ike(INFORMATIONAL, INITIATOR | RESPONSE, msgid, body=0))
    c.udp(5000, c4500, g4500, nat + ike(INFORMATIONAL, INITIATOR, 2, body=0))
    c.udp(5000 + S_LEG, g4500, c4500, nat + ike(INFORMATIONAL, RESPONSE, 2, body=0))
    c.udp(30_000, c4500, g4500, nat + ike(CREATE_CHILD_SA, INITIATOR, 3))
    c.udp(30_000 + S_LEG, g4500, c4500, nat + ike(CREATE_CHILD_SA, RESPONSE, 3))
    return c


def ipsec_esp():
    """IKE on 500 only (a host without NAT), then ESP (IP protocol 50) between
    the same peers, the gateway's first; and ESP of another host, without IKE."""
    c = Capture()
    c500, g500 = (CLIENT, 500), (GW, 500)
    c.udp(0, c500, g500, ike(IKE_SA_INIT, INITIATOR, 0, rspi=0))
    c.udp(S_LEG, g500, c500, ike(IKE_SA_INIT, RESPONSE, 0))
    c.udp(100, c500, g500, ike(IKE_AUTH, INITIATOR, 1))
    c.udp(100 + S_LEG, g500, c500, ike(IKE_AUTH, RESPONSE, 1))
    for i in range(5):
        c.esp(200 + 100 * i, GW, CLIENT, 0xC0000002, i + 1)
        c.esp(200 + 100 * i + C_LEG, CLIENT, GW, 0xC0000001, i + 1)
    for i in range(3):
        c.esp(300 + 100 * i, "192.0.2.99", GW, 0xC0000009, i + 1)
    return c


# --- OpenVPN over TCP, tls-auth with HMAC SHA256 -------------------------------

C_SID, S_SID = 0x0C11_E470_0000_0001, 0x5E4E_E400_0000_0002


def ovpn(opcode, sid, acks=(), remote=None, msg_id=None, replay=1, payload=b""):
    p = struct.pack("!BQ", opcode << 3, sid) + b"\xa5" * 32 + struct.pack("!II", replay, 1_767_225_600)
    p += struct.pack("!B", len(acks)) + b"".join(struct.pack("!I", a) for a in acks)
    if acks:
        p += struct.pack("!Q", remote)
    if msg_id is not None:
        p += struct.pack("!I", msg_id)
    return p + payload


def framed(p):
    return struct.pack("!H", len(p)) + p


def openvpn_tcp():
    """TCP handshake, client hard reset (message 0) → server hard reset acking
    it (server leg) → client P_ACK (client leg); the server's control messages
    1, 2, 3 in one segment, acked together 10 ms later (pairs with 3 only); the
    client's 1 acked piggy-backed by the server's 4; then data packets, two per
    segment and one split over two segments."""
    c = Capture()
    cl, gw = (CLIENT, 50123), (GW, 1194)
    seq = {cl: 1000, gw: 9000}
    SYN, ACK, PSH = 0x02, 0x10, 0x08

    def send(ms, src, dst, payload):
        c.tcp(ms, src, dst, seq[src], seq[dst], ACK | PSH, payload)
        seq[src] += len(payload)

    c.tcp(0, cl, gw, 999, 0, SYN)
    c.tcp(S_LEG, gw, cl, 8999, 1000, SYN | ACK)
    c.tcp(S_LEG + C_LEG, cl, gw, 1000, 9000, ACK)
    t = 100
    send(t, cl, gw, framed(ovpn(7, C_SID, msg_id=0)))
    send(t + S_LEG, gw, cl, framed(ovpn(8, S_SID, acks=[0], remote=C_SID, msg_id=0)))
    send(t + S_LEG + C_LEG, cl, gw, framed(ovpn(5, C_SID, acks=[0], remote=S_SID, replay=2)))
    t = 300
    send(t, gw, cl, b"".join(framed(ovpn(4, S_SID, msg_id=i, replay=1 + i, payload=b"\x16" * 100)) for i in (1, 2, 3)))
    send(t + C_LEG, cl, gw, framed(ovpn(5, C_SID, acks=[1, 2, 3], remote=S_SID, replay=3)))
    send(400, cl, gw, framed(ovpn(4, C_SID, msg_id=1, replay=4, payload=b"\x16" * 200)))
    send(400 + S_LEG, gw, cl, framed(ovpn(4, S_SID, acks=[1], remote=C_SID, msg_id=4, replay=5, payload=b"\x17" * 50)))
    send(400 + S_LEG + C_LEG, cl, gw, framed(ovpn(5, C_SID, acks=[4], remote=S_SID, replay=5)))
    data = [framed(struct.pack("!B3s", 9 << 3, b"\0\0\1") + b"\x99" * n) for n in (120, 80, 300)]
    send(600, cl, gw, data[0] + data[1])
    send(600 + S_LEG, gw, cl, data[2][:100])
    send(601 + S_LEG, gw, cl, data[2][100:])
    return c


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "pcaps", "crafted")
    wireguard_roaming().write(os.path.join(out, "wireguard-roaming.pcap"))
    ipsec_natt().write(os.path.join(out, "ipsec-natt.pcap"))
    ipsec_esp().write(os.path.join(out, "ipsec-esp.pcap"))
    openvpn_tcp().write(os.path.join(out, "openvpn-tcp-tls-auth.pcap"))


if __name__ == "__main__":
    main()
