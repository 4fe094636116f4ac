#!/usr/bin/env python3
"""Seed the fuzz corpora from the committed captures (pcaps/**).

    python3 fuzz/seed.py [OUT] [--per-target N]   (OUT: fuzz/corpus; N: 400)

Writes OUT/<target>/<name> for every target of fuzz/fuzz_targets/, in the
input layout each entry point of src/fuzzing.rs reads. Nothing here is
committed: the corpora are made again from pcaps/ at each run
(scripts/fuzz.sh). Standard library only.
"""

import gzip
import hashlib
import os
import struct
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# src/fuzzing.rs's LINKS, by pcap LINKTYPE_ number.
LINKS = {1: 0, 113: 1, 276: 2, 12: 3, 14: 3, 101: 3, 228: 4, 229: 5, 0: 6, 108: 7}
# src/fuzzing.rs's FLOWS: (transport, server port) -> index.
FLOWS = {(6, 22): 0, (6, 3389): 1, (17, 3389): 2, (6, 5900): 3, (6, 443): 4, (17, 51820): 5,
         (17, 1194): 7, (6, 1194): 8, (17, 500): 9, (17, 4500): 10, (50, 0): 11, (6, 2222): 13}
SERVER_PORTS = {22, 2222, 443, 3389, 5900, 5901, 51820, 1194, 1198, 500, 4500}
MAX_SEED = 32 * 1024
PER_TARGET = 400


def frames(path):
    """(link, ts_ns, data, wire_len) of every frame of a pcap or pcapng file."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 24:
        return
    magic = raw[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = "<" if magic[0] in (0xD4, 0x4D) else ">"
        nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
        link = struct.unpack(e + "I", raw[20:24])[0] & 0xFFFF
        at = 24
        while at + 16 <= len(raw):
            sec, frac, cap, wire = struct.unpack(e + "IIII", raw[at:at + 16])
            at += 16
            yield link, sec * 10**9 + frac * (1 if nano else 1000), raw[at:at + cap], wire
            at += cap
    elif magic == b"\x0a\x0d\x0d\x0a":
        e, links, at = "<", [], 0
        while at + 12 <= len(raw):
            if raw[at:at + 4] == b"\x0a\x0d\x0d\x0a":
                e = "<" if raw[at + 8:at + 12] == b"\x4d\x3c\x2b\x1a" else ">"
                links = []
            kind, blen = struct.unpack(e + "II", raw[at:at + 8])
            if blen < 12:
                return
            body = raw[at + 8:at + blen - 4]
            if kind == 1:
                links.append(struct.unpack(e + "H", body[:2])[0])
            elif kind == 6 and len(body) >= 20:
                iface, hi, lo, cap, wire = struct.unpack(e + "IIIII", body[:20])
                if iface < len(links):
                    yield links[iface], ((hi << 32) | lo) * 1000, body[20:20 + cap], wire
            elif kind == 3 and links:
                wire = struct.unpack(e + "I", body[:4])[0]
                yield links[0], 0, body[4:4 + wire], wire
            at += blen


def transport(link, f):
    """(proto, src, dst, sport, dport, tcp_flags, payload) of a frame, or None."""
    off, et = 0, None
    if link == 1:
        if len(f) < 14:
            return None
        et, off = struct.unpack(">H", f[12:14])[0], 14
        while et in (0x8100, 0x88A8, 0x9100) and len(f) >= off + 4:
            et, off = struct.unpack(">H", f[off + 2:off + 4])[0], off + 4
    elif link == 113:
        if len(f) < 16:
            return None
        et, off = struct.unpack(">H", f[14:16])[0], 16
    elif link == 276:
        if len(f) < 20:
            return None
        et, off = struct.unpack(">H", f[0:2])[0], 20
    elif link in (0, 108):
        off = 4
        et = 0x0800 if f[off:off + 1] and f[off] >> 4 == 4 else 0x86DD
    else:
        et = 0x0800 if f[:1] and f[0] >> 4 == 4 else 0x86DD
    ip = f[off:]
    if et == 0x0800 and len(ip) >= 20:
        hl = (ip[0] & 15) * 4
        proto, src, dst, rest = ip[9], ip[12:16], ip[16:20], ip[hl:]
    elif et == 0x86DD and len(ip) >= 40:
        proto, src, dst, rest = ip[6], ip[8:24], ip[24:40], ip[40:]
    else:
        return None
    if proto == 6 and len(rest) >= 20:
        hl = (rest[12] >> 4) * 4
        sport, dport = struct.unpack(">HH", rest[:4])
        return 6, src, dst, sport, dport, rest[13], rest[hl:]
    if proto == 17 and len(rest) >= 8:
        sport, dport = struct.unpack(">HH", rest[:4])
        return 17, src, dst, sport, dport, 0, rest[8:]
    if proto == 50:
        return 50, src, dst, 0, 0, 0, rest
    return None


def piece(b):
    b = b[:0xFFFF]
    return struct.pack(">H", len(b)) + b


class Corpus:
    def __init__(self, out):
        self.out, self.count = out, {}

    def add(self, target, data):
        if not data or self.count.get(target, 0) >= PER_TARGET:
            return
        d = self.out / target
        d.mkdir(parents=True, exist_ok=True)
        (d / hashlib.sha1(data).hexdigest()).write_bytes(data[:MAX_SEED])
        self.count[target] = self.count.get(target, 0) + 1


def step(prev, ts):
    """A time step as the engine input reads it (ms; 255: a minute)."""
    if prev is None:
        return 0
    ms = (ts - prev) // 1_000_000
    return 255 if ms >= 60_000 else 254 if ms < 0 else min(ms, 253)


def seed_capture(c, path, raw):
    fs = list(frames(path))
    if not fs:
        return
    link = fs[0][0]
    if link not in LINKS:
        return
    li = LINKS[link]
    # The capture file itself, or its start.
    c.add("pcap_file", raw[:8192])
    if len(raw) % 8 == 0:
        c.add("pcap_file", gzip.compress(raw[:4096], mtime=0))
    # decode: a handful of frames, each with its wire length.
    for _, _, data, wire in fs[:6]:
        c.add("decode", bytes([li, 2]) + struct.pack(">H", min(wire - len(data), 0xFFFF)) + data)
    # engine, raw frames: the capture's start.
    out, prev = bytearray([0x00, li]), None
    for _, ts, data, wire in fs:
        rec = bytes([step(prev, ts), min(wire - len(data), 254)]) + piece(data[:1600])
        if len(out) + len(rec) > MAX_SEED:
            break
        out += rec
        prev = ts
    c.add("engine", bytes(out))
    # Per flow: payloads for the protocol targets, synthesized engine packets.
    flows = {}
    synth, prev = bytearray([0x80]), None
    for _, ts, data, wire in fs:
        t = transport(link, data)
        if not t:
            continue
        proto, src, dst, sport, dport, flags, payload = t
        if proto == 50:
            server_is_dst, port = True, 0
        elif dport in SERVER_PORTS or (sport not in SERVER_PORTS and dport < sport):
            server_is_dst, port = True, dport
        else:
            server_is_dst, port = False, sport
        key = (proto, port, frozenset([(src, sport), (dst, dport)]))
        fl = flows.setdefault(key, {"proto": proto, "port": port, "msgs": []})
        side = 0 if server_is_dst else 1
        if payload and len(fl["msgs"]) < 64:
            fl["msgs"].append((side, ts, payload))
        f = FLOWS.get((proto, port))
        if f is not None and len(synth) < MAX_SEED:
            synth += bytes([f | side << 4, flags, step(prev, ts)]) + piece(payload[:1600])
            prev = ts
    c.add("engine", bytes(synth))
    for fl in flows.values():
        msgs, proto, port = fl["msgs"], fl["proto"], fl["port"]
        if not msgs:
            continue

        def stream(head, first=0, udp_flag=0):
            out, prev = bytearray(head), None
            for side, ts, p in msgs:
                out += bytes([side | first | udp_flag, step(prev, ts)]) + piece(p)
                prev = ts
            return bytes(out)

        tp = {6: 0, 17: 1, 50: 2}[proto]
        probe = bytearray([tp]) + struct.pack(">H", port) + b"\x00"
        for side, _, p in msgs[:4]:
            probe += bytes([side]) + piece(p)
        c.add("probes", bytes(probe))
        if proto == 6 and (port in (22, 2222) or msgs[0][2].startswith(b"SSH-")):
            c.add("ssh", stream(b"\x00\x00"))
        if proto == 6 and port == 443:
            c.add("tls", stream(b""))
        if port == 3389:
            c.add("rdp", stream(b"\x00\x00", udp_flag=0x40 if proto == 17 else 0))
        if proto == 6 and 5900 <= port <= 5910:
            c.add("vnc", stream(b"\x00\x00"))
        if proto == 6 and msgs[0][2][:1] == b"\x03":
            c.add("rdp", stream(b"\x00\x00"))
        kind = None
        if port == 51820 or (proto == 17 and msgs[0][2][:4] in (b"\x01\x00\x00\x00", b"\x04\x00\x00\x00")):
            kind = 0
        elif port in (1194, 1198):
            kind = 1
        elif port in (500, 4500) or proto == 50:
            kind = 2
        if kind is not None:
            tr = {17: 0, 6: 1, 50: 2}[proto]
            head = kind | tr << 2 | (0x10 if port == 4500 else 0)
            out, prev = bytearray([head]), None
            for side, ts, p in msgs:
                out += bytes([side, step(prev, ts), 0]) + piece(p)
                prev = ts
            c.add("tunnel", bytes(out))


def main():
    global PER_TARGET
    args = sys.argv[1:]
    if "--per-target" in args:
        i = args.index("--per-target")
        PER_TARGET = int(args[i + 1])
        del args[i:i + 2]
    out = Path(args[0]) if args else ROOT / "fuzz" / "corpus"
    c = Corpus(out)
    # Captures in an order of their own (a hash of the name), so a small
    # corpus still draws from every kind of capture.
    for path in sorted((ROOT / "pcaps").rglob("*"), key=lambda p: hashlib.sha1(str(p.relative_to(ROOT)).encode()).digest()):
        if not path.is_file() or path.suffix not in (".pcap", ".pcapng", ".gz", ".cap"):
            continue
        try:
            seed_capture(c, path, path.read_bytes())
        except (struct.error, OSError, EOFError, KeyError) as e:
            print(f"{path}: skipped ({e})", file=sys.stderr)
    for target in sorted(p.stem for p in (ROOT / "fuzz" / "fuzz_targets").glob("*.rs")):
        (out / target).mkdir(parents=True, exist_ok=True)
        print(f"{target}: {len(os.listdir(out / target))} seeds")


if __name__ == "__main__":
    main()
