#!/usr/bin/env python3
"""MPTCP lab: one interactive OpenSSH session over Multipath TCP with two subflows, captured with exact truth.

Run as root on Debian 12 (Python 3.11 standard library only; needs mptcpize, iproute2, ethtool, tcpdump,
mergecap and tshark), one lab at a time on the machine:

    flock /tmp/echoloc-lab.lock python3 lab/mptcp.py                 # -> pcaps/mptcp/ssh-two-subflows/
    flock /tmp/echoloc-lab.lock python3 lab/mptcp.py --out /tmp/mptcp --keep-work
    flock /tmp/echoloc-lab.lock python3 lab/mptcp.py --path2-delay-ms 20   # -> pcaps/mptcp/ssh-slow-join/

Client namespace C and server namespace S are joined by two veth pairs (two paths, no delay by default):

    C eth0 192.0.2.10    ---- path 1 ----  S eth0 192.0.2.20     (first subflow, MP_CAPABLE)
    C eth1 198.51.100.10 ---- path 2 ----  S eth1 198.51.100.20  (second subflow, MP_JOIN)

With --path2-delay-ms D (> 0) path 2 instead runs through a bridge namespace B (no IP addresses) where
run-lab.py's userspace delaying bridge (`run-lab.py _bridge`, started by runlab.start_bridge) holds every frame
D ms in each direction, so the join subflow's round trip at S is ~2*D while path 1 stays direct:

    C eth1 198.51.100.10 <-veth-> B b0 ... bridge, D ms each way ... B b1 <-veth-> S eth1 198.51.100.20

S's in-kernel path manager announces 198.51.100.20 (endpoint `signal`, ADD_ADDR); C accepts it
(`limits set subflows 2 add_addr_accepted 2`) and opens the second subflow to it (MP_JOIN SYN client -> server).
`mptcpize run sshd` / `mptcpize run ssh` make OpenSSH's TCP sockets MPTCP ones. A scripted typist (lab/messy_typist.py)
types three commands (`echo hello`, `ls /`, `exit`; with --path2-delay-ms D > 0 the second is the longer
`echo slow path second command ok`, so 33 keys take the slow join path); before the second, C marks path 1 as backup
(`ip mptcp endpoint change ... backup`, an MP_PRIO on subflow 1) so both ends' schedulers move to subflow 2; before
the third, path 1 is made non-backup again (MP_PRIO B=0) and traffic returns to subflow 1. tcpdump captures S's two interfaces (nanosecond, Ethernet); mergecap
joins them into ssh-mptcp.pcap. With --path2-delay-ms D > 0, tcpdump also captures C's two interfaces in the same
run (the client's edge of the same session) into client-edge.pcap, where the join's SYN -> SYN/ACK and each key on
path 2 -> its echo take ~2*D. truth.json holds the keys, the subflows and the MPTCP facts decoded by this script's
own option parser (and checked against tshark), `captures` (file and vantage of each pcap) and, with D > 0,
`client_edge`: see lab/README.md "MPTCP lab".
"""

import argparse
import hashlib
import hmac
import json
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from messy_common import runlab  # noqa: E402
from messy_typist import LabError as PersonError  # noqa: E402
from messy_typist import Person  # noqa: E402

LabError = runlab.LabError
log = runlab.log
SCHEMA = "echoloc-mptcp-truth/1"
DEFAULT_OUT = HERE.parent / "pcaps" / "mptcp" / "ssh-two-subflows"
SLOW_JOIN_OUT = HERE.parent / "pcaps" / "mptcp" / "ssh-slow-join"  # default --out when --path2-delay-ms 20
BRIDGE_IFS = ("b0", "b1")  # B's veth ends towards C eth1 and S eth1 when path 2 is delayed
PCAP_NAME = "ssh-mptcp.pcap"  # server edge (S eth0 + eth1): the capture every consumer reads
CLIENT_PCAP_NAME = "client-edge.pcap"  # client edge (C eth0 + eth1), same session; only when path 2 is delayed
PROMPT = "server$ "
KEY_PAYLOAD = 36  # chacha20-poly1305: one keystroke (CHANNEL_DATA, 1 byte) is 36 bytes of TCP payload
PATHS = [
    {"path": 1, "ifname": "eth0", "client": "192.0.2.10", "server": "192.0.2.20"},
    {"path": 2, "ifname": "eth1", "client": "198.51.100.10", "server": "198.51.100.20"},
]
BACKUP_ENDPOINT_ID = 9  # C's endpoint for its path-1 address, made only to flip the backup flag
# (command, what C's path manager does just before it is typed, subflow the keys should take)
COMMANDS = [
    ("echo hello", None, 1),
    ("ls /", "backup", 2),
    ("exit", "nobackup", 1),
]
# With --path2-delay-ms D > 0, command 2 (typed while path 1 is backup, so its keys and echoes take the slow join
# subflow) is longer: 32 characters + Enter = 33 keys on path 2, enough echoes for a sensor to form a persistent
# echo level there (two agreeing windows of 5 need >= 10). Its output is one short fixed line. D = 0 keeps COMMANDS.
SLOW_JOIN_COMMAND2 = "echo slow path second command ok"


def commands_for(delay):
    """The (command, path manager action before it, intended subflow) list of a run with path-2 delay `delay`."""
    if not delay:
        return COMMANDS
    return [COMMANDS[0], (SLOW_JOIN_COMMAND2,) + COMMANDS[1][1:], COMMANDS[2]]


SHELL_RC = "PS1='{prompt}'\nunset HISTFILE PROMPT_COMMAND\nexport HOME={home}\n"
MPTCP_SUBTYPES = {0: "MP_CAPABLE", 1: "MP_JOIN", 2: "DSS", 3: "ADD_ADDR", 4: "REMOVE_ADDR", 5: "MP_PRIO",
                  6: "MP_FAIL", 7: "MP_FASTCLOSE", 8: "MP_TCPRST"}


# --------------------------------------------------------------------------------------------------------------
# pcap reading and MPTCP option decoding (independent of tshark; tshark checks it afterwards)
# --------------------------------------------------------------------------------------------------------------


def read_pcap(path):
    """Frames of a classic pcap (Ethernet): [(frame number from 1, ts_ns, bytes)]."""
    data = Path(path).read_bytes()
    magic = struct.unpack("<I", data[:4])[0]
    if magic == 0xA1B23C4D:
        end, nano = "<", True
    elif magic == 0xA1B2C3D4:
        end, nano = "<", False
    else:
        raise LabError(f"{path}: not a little-endian classic pcap (magic {magic:#x})")
    linktype = struct.unpack(end + "I", data[20:24])[0]
    if linktype != 1:
        raise LabError(f"{path}: linktype {linktype}, expected 1 (Ethernet)")
    out, off, n = [], 24, 0
    while off + 16 <= len(data):
        sec, frac, incl, _orig = struct.unpack(end + "IIII", data[off:off + 16])
        off += 16
        n += 1
        out.append((n, sec * 1_000_000_000 + (frac if nano else frac * 1000), data[off:off + incl]))
        off += incl
    return out


def decode_mptcp(opt):
    """One MPTCP option (kind 30, whole option bytes) -> dict of its fields (RFC 8684 layouts)."""
    length, sub = opt[1], opt[2] >> 4
    d = {"subtype": sub, "name": MPTCP_SUBTYPES.get(sub, f"subtype {sub}"), "length": length, "hex": opt.hex()}
    if sub == 0:  # MP_CAPABLE: byte 2 = subtype<<4 | version, byte 3 = flags A B C D E F G H
        d["version"] = opt[2] & 0x0F
        d["flags"] = opt[3]
        if length >= 12:
            d["sender_key"] = opt[4:12].hex()
        if length >= 20:
            d["receiver_key"] = opt[12:20].hex()
        if length >= 22:
            d["data_level_length"] = struct.unpack("!H", opt[20:22])[0]
        if length >= 24:
            d["checksum"] = opt[22:24].hex()
    elif sub == 1:  # MP_JOIN: SYN 12, SYN/ACK 16, third ACK 24
        d["backup"] = opt[2] & 1
        if length == 12:
            d.update(form="SYN", address_id=opt[3], receiver_token=opt[4:8].hex(), sender_random=opt[8:12].hex())
        elif length == 16:
            d.update(form="SYN/ACK", address_id=opt[3], truncated_hmac=opt[4:12].hex(), sender_random=opt[12:16].hex())
        elif length == 24:
            d.update(form="ACK", hmac=opt[4:24].hex())
    elif sub == 2:  # DSS: byte 3 = 000 F m M a A
        f = opt[3]
        d["flags"] = f
        d["data_fin"], d["dsn8"], d["dsn_present"] = bool(f & 0x10), bool(f & 0x08), bool(f & 0x04)
        d["ack8"], d["ack_present"] = bool(f & 0x02), bool(f & 0x01)
        i = 4
        if d["ack_present"]:
            w = 8 if d["ack8"] else 4
            d["data_ack"] = int.from_bytes(opt[i:i + w], "big")
            i += w
        if d["dsn_present"]:
            w = 8 if d["dsn8"] else 4
            d["dsn"] = int.from_bytes(opt[i:i + w], "big")
            i += w
            d["subflow_seq"] = struct.unpack("!I", opt[i:i + 4])[0]
            d["data_level_length"] = struct.unpack("!H", opt[i + 4:i + 6])[0]
            i += 6
            if length >= i + 2:
                d["checksum"] = opt[i:i + 2].hex()
    elif sub == 3:  # ADD_ADDR (v1): byte 2 = subtype<<4 | 000E, byte 3 = address id, IPv4, [port], [HMAC 8]
        d["echo"] = opt[2] & 1
        d["address_id"] = opt[3]
        d["address"] = ".".join(str(b) for b in opt[4:8])
        rest = length - 8
        if rest in (2, 10):
            d["port"] = struct.unpack("!H", opt[8:10])[0]
            rest -= 2
        if rest == 8:
            d["truncated_hmac"] = opt[length - 8:length].hex()
    elif sub == 5:  # MP_PRIO (v1): byte 2 = subtype<<4 | 000B
        d["backup"] = opt[2] & 1
        if length >= 4:
            d["address_id"] = opt[3]
    return d


def parse_segments(frames):
    """IPv4/TCP frames -> list of dicts with addresses, flags, payload length and decoded MPTCP options."""
    segs = []
    for n, ts, b in frames:
        if len(b) < 34 or b[12:14] != b"\x08\x00" or b[23] != 6:
            continue
        ihl = (b[14] & 0x0F) * 4
        ip_total = struct.unpack("!H", b[16:18])[0]
        t = 14 + ihl
        sport, dport, seq, ack = struct.unpack("!HHII", b[t:t + 12])
        doff = (b[t + 12] >> 4) * 4
        flags = b[t + 13]
        opts, mp = b[t + 20:t + doff], []
        i = 0
        while i < len(opts):
            kind = opts[i]
            if kind == 0:
                break
            if kind == 1:
                i += 1
                continue
            ln = opts[i + 1]
            if ln < 2:
                break
            if kind == 30:
                mp.append(decode_mptcp(opts[i:i + ln]))
            i += ln
        segs.append({"frame": n, "ts_ns": ts, "src": ".".join(map(str, b[26:30])), "sport": sport,
                     "dst": ".".join(map(str, b[30:34])), "dport": dport, "seq": seq, "ack": ack,
                     "flags": flags, "syn": bool(flags & 2), "ackf": bool(flags & 16), "fin": bool(flags & 1),
                     "rst": bool(flags & 4), "payload": ip_total - ihl - doff, "mptcp": mp})
    return segs


def token_of(key_hex):
    """RFC 8684 (v1): token = most significant 32 bits of SHA-256(key); IDSN = least significant 64 bits."""
    h = hashlib.sha256(bytes.fromhex(key_hex)).digest()
    return h[:4].hex(), int.from_bytes(h[-8:], "big")


def flag_names(flags):
    return "".join(c for c, bit in zip("UAPRSF", (32, 16, 8, 4, 2, 1)) if flags & bit) or "-"


def handshake_rtts(a):
    """Per subflow, SYN -> SYN/ACK and SYN/ACK -> third ACK at the capture point, in ms. At S the first is S's
    own turnaround and the second the path's round trip; at C it is the other way round (SYN -> SYN/ACK is the
    round trip C<->S of that subflow's path, SYN/ACK -> third ACK C's turnaround)."""
    out = {}
    for sf in a["subflows"]:
        segs = [s for s in a["segments"] if s["subflow"] == sf["index"]]
        syn = next(s for s in segs if s["syn"] and not s["ackf"] and s["dir"] == "c2s")
        synack = next(s for s in segs if s["syn"] and s["ackf"] and s["dir"] == "s2c")
        ack = next(s for s in segs if not s["syn"] and s["dir"] == "c2s" and s["ts_ns"] >= synack["ts_ns"])
        out[sf["index"]] = {"syn_frame": syn["frame"], "synack_frame": synack["frame"], "ack_frame": ack["frame"],
                            "syn_to_synack_ms": round((synack["ts_ns"] - syn["ts_ns"]) / 1e6, 3),
                            "synack_to_ack_ms": round((ack["ts_ns"] - synack["ts_ns"]) / 1e6, 3)}
    return out


def analyze(pcap):
    """MPTCP facts of the capture: subflows in order of creation, handshake options, tokens, DSS statistics."""
    segs = parse_segments(read_pcap(pcap))
    subflows = []
    for s in segs:
        if s["syn"] and not s["ackf"] and s["dport"] == 22:
            kinds = [o["name"] for o in s["mptcp"]]
            subflows.append({"index": len(subflows) + 1,
                             "kind": "MP_CAPABLE" if "MP_CAPABLE" in kinds else "MP_JOIN" if "MP_JOIN" in kinds
                             else "plain TCP",
                             "client": f"{s['src']}:{s['sport']}", "server": f"{s['dst']}:{s['dport']}",
                             "syn_frame": s["frame"], "syn_ns": s["ts_ns"]})
    if len(subflows) != 2 or subflows[0]["kind"] != "MP_CAPABLE" or subflows[1]["kind"] != "MP_JOIN":
        raise LabError(f"expected an MP_CAPABLE then an MP_JOIN subflow, got {subflows}")
    by_tuple = {}
    for sf in subflows:
        c, s_ = sf["client"].rsplit(":", 1), sf["server"].rsplit(":", 1)
        by_tuple[(c[0], int(c[1]), s_[0], int(s_[1]))] = (sf["index"], "c2s")
        by_tuple[(s_[0], int(s_[1]), c[0], int(c[1]))] = (sf["index"], "s2c")
    for s in segs:
        s["subflow"], s["dir"] = by_tuple.get((s["src"], s["sport"], s["dst"], s["dport"]), (None, None))

    def handshake_row(s):
        return {"frame": s["frame"], "subflow": s["subflow"], "dir": s["dir"], "tcp_flags": flag_names(s["flags"]),
                "payload": s["payload"], "mptcp": s["mptcp"]}

    # first subflow: every packet up to and including the first data segment in each direction
    sf1 = [s for s in segs if s["subflow"] == 1]
    first_data = {}
    hs1 = []
    for s in sf1:
        hs1.append(handshake_row(s))
        if s["payload"] and s["dir"] not in first_data:
            first_data[s["dir"]] = s
        if len(first_data) == 2:
            break
    caps = [o for s in sf1 for o in s["mptcp"] if o["subtype"] == 0]
    versions = sorted({o["version"] for o in caps})
    synack_key = next(o["sender_key"] for s in sf1 if s["syn"] and s["ackf"] for o in s["mptcp"] if o["subtype"] == 0)
    ack3 = next(o for s in sf1 if not s["syn"] for o in s["mptcp"] if o["subtype"] == 0 and o["length"] >= 20)
    client_key, server_key = ack3["sender_key"], ack3["receiver_key"]
    if synack_key != server_key:
        raise LabError("server key in SYN/ACK differs from the one echoed in the third ACK")
    ctok, cidsn = token_of(client_key)
    stok, sidsn = token_of(server_key)
    # second subflow: the MP_JOIN three-way handshake and its HMACs
    sf2 = [s for s in segs if s["subflow"] == 2]
    jsyn = next(o for s in sf2 if s["syn"] and not s["ackf"] for o in s["mptcp"] if o["subtype"] == 1)
    jsynack = next(o for s in sf2 if s["syn"] and s["ackf"] for o in s["mptcp"] if o["subtype"] == 1)
    jack = next(o for s in sf2 if not s["syn"] for o in s["mptcp"] if o["subtype"] == 1)
    ka, kb = bytes.fromhex(client_key), bytes.fromhex(server_key)
    ra, rb = bytes.fromhex(jsyn["sender_random"]), bytes.fromhex(jsynack["sender_random"])
    hmac_b = hmac.new(kb + ka, rb + ra, hashlib.sha256).digest()[:8].hex()
    hmac_a = hmac.new(ka + kb, ra + rb, hashlib.sha256).digest()[:20].hex()
    join = {
        "syn": jsyn, "synack": jsynack, "ack": jack,
        "token_in_syn": jsyn["receiver_token"],
        "token_matches": "server" if jsyn["receiver_token"] == stok else "client" if jsyn["receiver_token"] == ctok
        else "neither",
        "synack_truncated_hmac_ok": jsynack["truncated_hmac"] == hmac_b,
        "ack_hmac_ok": jack["hmac"] == hmac_a,
        "hmac_rule": "SYN/ACK: first 64 bits of HMAC-SHA256(key=server_key||client_key, msg=R_server||R_client); "
                     "third ACK: first 160 bits of HMAC-SHA256(key=client_key||server_key, msg=R_client||R_server)",
    }
    hs2 = [handshake_row(s) for s in sf2[:4]]
    # ADD_ADDR (server announces path 2) and its echo; HMAC over address id, IPv4 address, port (0 if absent)
    add_addr = []
    for s in segs:
        for o in s["mptcp"]:
            if o["subtype"] == 3:
                row = {"frame": s["frame"], "subflow": s["subflow"], "dir": s["dir"], **o}
                if "truncated_hmac" in o:
                    sender, peer = (kb, ka) if s["dir"] == "s2c" else (ka, kb)
                    msg = bytes([o["address_id"]]) + bytes(map(int, o["address"].split("."))) + \
                        struct.pack("!H", o.get("port", 0))
                    # RFC 8684 3.4.1: the RIGHTMOST 64 bits (MP_JOIN's truncated HMAC takes the leftmost)
                    row["hmac_ok"] = hmac.new(sender + peer, msg, hashlib.sha256).digest()[-8:].hex() == \
                        o["truncated_hmac"]
                    row["hmac_rule"] = ("rightmost 64 bits of HMAC-SHA256(key=sender_key||receiver_key, "
                                        "msg=address_id||IPv4 address||port (2 bytes, 0 when absent))")
                add_addr.append(row)
    mp_prio = [{"frame": s["frame"], "subflow": s["subflow"], "dir": s["dir"], "ts_ns": s["ts_ns"], **o}
               for s in segs for o in s["mptcp"] if o["subtype"] == 5]
    # DSS: per (direction, data/no data) the option lengths and flags seen; does every data segment map itself?
    dss_stats = {}
    data_without_mapping = []
    data_fin = []
    for s in segs:
        if s["subflow"] is None or s["syn"]:
            continue
        dss = [o for o in s["mptcp"] if o["subtype"] == 2]
        kind = f"{s['dir']} {'data' if s['payload'] else 'no-data'}"
        for o in dss:
            k = f"{kind}: len {o['length']} flags {o['flags']:#04x}"
            dss_stats[k] = dss_stats.get(k, 0) + 1
            if o["data_fin"]:
                data_fin.append({"frame": s["frame"], "subflow": s["subflow"], "dir": s["dir"],
                                 "tcp_flags": flag_names(s["flags"]), "payload": s["payload"], **o})
        if s["payload"] and not any(o.get("dsn_present") for o in dss):
            data_without_mapping.append({"frame": s["frame"], "subflow": s["subflow"], "dir": s["dir"],
                                         "payload": s["payload"],
                                         "mptcp": [f"{o['name']} len {o['length']}" for o in s["mptcp"]]})
    # a mapping may cover more than its segment (Linux repeats it on every segment it covers): DSN of the
    # segment's first byte = mapping DSN + (relative subflow seq - mapping's subflow seq)
    isn = {(s["src"], s["sport"]): s["seq"] for s in segs if s["syn"]}
    wide_mappings = []
    for s in segs:
        for o in s["mptcp"]:
            if s["payload"] and o.get("dsn_present") and o["data_level_length"] != s["payload"]:
                wide_mappings.append({"frame": s["frame"], "subflow": s["subflow"], "dir": s["dir"],
                                      "payload": s["payload"], "mapping_dsn": o["dsn"],
                                      "mapping_subflow_seq": o["subflow_seq"],
                                      "mapping_length": o["data_level_length"],
                                      "relative_subflow_seq": (s["seq"] - isn[(s["src"], s["sport"])]) % (1 << 32)})
    # relative DSNs: the first DSS mapping each way should start at IDSN+1 (+ bytes sent in the MP_CAPABLE packet)
    first_dsn = {}
    for s in segs:
        for o in s["mptcp"]:
            if o.get("dsn_present") and s["dir"] not in first_dsn and s["payload"]:
                first_dsn[s["dir"]] = {"frame": s["frame"], "dsn": o["dsn"]}
    mpc_data = {d: (s["payload"] if any(o["subtype"] == 0 for o in s["mptcp"]) else 0) for d, s in first_data.items()}
    idsn = {"c2s": cidsn, "s2c": sidsn}
    for d, v in first_dsn.items():
        v["relative_to_idsn"] = (v["dsn"] - idsn[d]) % (1 << 64)
        v["bytes_before_in_mp_capable_packet"] = mpc_data.get(d, 0)
    return {
        "segments": segs, "subflows": subflows,
        "facts": {
            "mptcp_version": versions[0] if len(versions) == 1 else versions,
            "client_key": client_key, "server_key": server_key,
            "client_token": ctok, "server_token": stok,
            "client_idsn": f"{cidsn:016x}", "server_idsn": f"{sidsn:016x}",
            "token_rule": "token = most significant 32 bits of SHA-256(64-bit key); IDSN = least significant 64 bits",
            "first_subflow_handshake": hs1,
            "join": join, "second_subflow_handshake": hs2,
            "add_addr": add_addr, "mp_prio": mp_prio,
            "dss_option_counts": dict(sorted(dss_stats.items())),
            "data_segments_without_dss_mapping": data_without_mapping,
            "data_segments_whose_mapping_is_longer_than_the_segment": wide_mappings,
            "first_dss_dsn": first_dsn,
            "data_fin": data_fin,
            "checksums": any("checksum" in o for s in segs for o in s["mptcp"]),
        },
    }


# --------------------------------------------------------------------------------------------------------------
# The lab
# --------------------------------------------------------------------------------------------------------------


class Run:
    def __init__(self, args):
        self.args = args
        self.out = Path(args.out).resolve()
        self.work = Path(tempfile.mkdtemp(prefix="echoloc-mptcp-"))
        self.keydir = self.work / "keys"
        self.keydir.mkdir()
        self.lab = runlab.Lab()
        self.rng = random.Random(args.seed)
        self.person = None
        self.events = []
        d = args.path2_delay_ms
        self.delay = int(d) if d == int(d) else d  # path 2's one-way delay in ms; 0 = direct veth (no bridge)
        self.commands = commands_for(self.delay)  # command 2 is longer when path 2 is delayed
        self.bridge = None
        self.bridge_stats = None
        self.pings = {}

    def ip(self, role, *a):
        return self.lab.run("ip", *a, ns=role)

    def build(self):
        lab = self.lab
        for role in ("C", "S") + (("B",) if self.delay else ()):
            lab.add_ns(role)
        for p in PATHS:
            if p["path"] == 2 and self.delay:  # C eth1 <-veth-> B b0 ... bridge ... B b1 <-veth-> S eth1
                lab.veth("C", p["ifname"], "B", BRIDGE_IFS[0])
                lab.veth("S", p["ifname"], "B", BRIDGE_IFS[1])
            else:
                lab.veth("C", p["ifname"], "S", p["ifname"])
            lab.addr("C", p["ifname"], p["client"] + "/24")
            lab.addr("S", p["ifname"], p["server"] + "/24")
        if self.delay:  # run-lab.py's AF_PACKET bridge in B: D ms each way, no jitter
            self.bridge = runlab.start_bridge(lab, 0, BRIDGE_IFS[0], BRIDGE_IFS[1], self.delay, 0.0,
                                              self.args.seed, self.work)
        for role in ("C", "S"):
            lab.run("sysctl", "-q", "-w", "net.mptcp.enabled=1", ns=role)
            self.ip(role, "mptcp", "limits", "set", "subflows", "2", "add_addr_accepted", "2")
        # S announces its path-2 address (ADD_ADDR); C opens a subflow to it (MP_JOIN)
        self.ip("S", "mptcp", "endpoint", "add", PATHS[1]["server"], "dev", PATHS[1]["ifname"], "signal")
        self.pm = {"C": {"limits": self.ip("C", "mptcp", "limits", "show").strip(),
                         "endpoints": self.ip("C", "mptcp", "endpoint", "show").strip()},
                   "S": {"limits": self.ip("S", "mptcp", "limits", "show").strip(),
                         "endpoints": self.ip("S", "mptcp", "endpoint", "show").strip()},
                   "checksum_enabled": lab.run("sysctl", "-n", "net.mptcp.checksum_enabled", ns="S").strip(),
                   "scheduler": lab.run("sysctl", "-n", "net.mptcp.scheduler", ns="S", check=False).strip() or None}

    def start_sshd(self):
        runlab.make_keys(self.keydir)
        home = self.work / "home"
        home.mkdir()
        rc = self.work / "rc"
        rc.write_text(SHELL_RC.format(prompt=PROMPT, home=home))
        cfg = self.work / "sshd_config"
        cfg.write_text(runlab.SSHD_CONFIG.format(
            hostkey=self.keydir / "host-server", pidfile=self.work / "sshd.pid",
            authkeys=self.keydir / "authorized_keys", cipher=runlab.CIPHER, usepam="UsePAM no\n",
            force_command=f"ForceCommand exec /bin/bash --noprofile --rcfile {rc} -i\n"))
        self.lab.run(runlab.SSHD, "-t", "-f", cfg, ns="S")
        self.lab.spawn("sshd", "S", ["mptcpize", "run", runlab.SSHD, "-D", "-e", "-f", cfg],
                       stderr=open(self.work / "sshd.log", "wb"))
        self.lab.wait_listen("S", 22)
        self.client_cfg = self.work / "ssh_config"
        self.client_cfg.write_text(runlab.CLIENT_CONFIG.format(
            relay=PATHS[0]["server"], server=PATHS[0]["server"], key=self.keydir / "id_ed25519",
            cipher=runlab.CIPHER, extra=""))

    def begin_capture(self):
        for p in PATHS:  # resolve ARP on both paths before the capture starts
            self.pings[p["path"]] = self.lab.ping("C", p["server"], count=5 if p["path"] == 2 and self.delay else 2)
        self.raw = [self.work / f"raw-path{p['path']}.pcap" for p in PATHS]
        self.dumps = [runlab.start_capture(self.lab, f"path{p['path']}", "S", p["ifname"], f)
                      for p, f in zip(PATHS, self.raw)]
        self.raw_client = []
        if self.delay:  # path 2 delayed: also capture at the client's edge (C eth0, C eth1), same session
            self.raw_client = [self.work / f"raw-client-path{p['path']}.pcap" for p in PATHS]
            self.dumps += [runlab.start_capture(self.lab, f"client-path{p['path']}", "C", p["ifname"], f)
                           for p, f in zip(PATHS, self.raw_client)]
        time.sleep(0.3)

    def subflows_now(self):
        out = self.lab.run("ss", "-tnH", "state", "established", "( dport = :22 )", ns="C")
        return [line.split()[-2:] for line in out.splitlines() if line.strip()]

    def session(self):
        argv = ["ip", "netns", "exec", self.lab.ns("C"), "mptcpize", "run", "ssh", "-F", str(self.client_cfg),
                "server"]
        self.person = p = Person(argv, self.rng, conn="ssh-mptcp", home=self.work / "home", gap=(0.15, 0.30),
                                 label="mptcp")
        p.expect(PROMPT)
        deadline = time.monotonic() + 10
        while len(self.subflows_now()) < 2:
            if time.monotonic() > deadline:
                raise LabError(f"second subflow not established: {self.subflows_now()}")
            p.pump_for(0.1)
        self.ss_subflows = self.subflows_now()
        self.ss_mptcp = self.lab.run("ss", "-MniH", ns="C").strip()
        log(f"two subflows: {self.ss_subflows}")
        p.pump_for(0.5)
        for i, (text, pm, want) in enumerate(self.commands):
            if pm:
                if not any(e.get("action") == "endpoint add" for e in self.events):
                    self.ip("C", "mptcp", "endpoint", "add", PATHS[0]["client"], "dev", PATHS[0]["ifname"],
                            "id", str(BACKUP_ENDPOINT_ID))
                    self.events.append({"action": "endpoint add", "ns": "C", "t_ns": time.time_ns(),
                                        "command": f"ip mptcp endpoint add {PATHS[0]['client']} dev "
                                                   f"{PATHS[0]['ifname']} id {BACKUP_ENDPOINT_ID}"})
                t = time.time_ns()
                self.ip("C", "mptcp", "endpoint", "change", "id", str(BACKUP_ENDPOINT_ID), pm)
                self.events.append({"action": f"path 1 {pm}", "ns": "C", "t_ns": t,
                                    "command": f"ip mptcp endpoint change id {BACKUP_ENDPOINT_ID} {pm}",
                                    "effect": "C sends MP_PRIO on subflow 1; both schedulers then "
                                              + ("prefer subflow 2" if pm == "backup" else "use subflow 1 again")})
                p.pump_for(0.3)
            first_key = len(p.keys)
            p.line(text, expect="EXIT" if text == "exit" else PROMPT)
            for k in p.keys[first_key:]:
                k["command"] = i + 1
                k["intended_subflow"] = want
        self.end_ns = time.time_ns()

    def finish(self):
        time.sleep(1.0)
        for d in self.dumps:
            self.lab.stop(d, signal.SIGINT)
        if self.bridge:  # the bridge writes its statistics (frames, lateness) when it stops
            proc, stats = self.bridge
            self.lab.stop(proc)
            try:
                self.bridge_stats = json.loads(Path(stats).read_text())
            except (OSError, ValueError):
                self.bridge_stats = None
        self.out.mkdir(parents=True, exist_ok=True)
        pcap = self.out / PCAP_NAME
        subprocess.run(["mergecap", "-F", "nsecpcap", "-w", pcap] + [str(r) for r in self.raw], check=True)
        a = analyze(pcap)
        keys = self.match_keys(a["segments"])
        truth = self.make_truth(pcap, a, keys)
        if self.raw_client:
            cpcap = self.out / CLIENT_PCAP_NAME
            subprocess.run(["mergecap", "-F", "nsecpcap", "-w", cpcap] + [str(r) for r in self.raw_client],
                           check=True)
            truth["client_edge"] = self.client_edge_truth(analyze(cpcap), a, keys)
            truth["captures"].append({"file": CLIENT_PCAP_NAME, "vantage": "client C eth0+eth1",
                                      "interfaces": {f"path{q['path']}": f"C {q['ifname']}" for q in PATHS},
                                      "frames": len(read_pcap(cpcap))})
        truth["check"] = check(truth, pcap)
        (self.out / "truth.json").write_text(json.dumps(truth, indent=1) + "\n")
        return truth

    def match_keys(self, segs):
        """Each key -> the first unused client->server segment of 36 payload bytes at S within 200 ms after it."""
        cands = [s for s in segs if s["dir"] == "c2s" and s["payload"] == KEY_PAYLOAD]
        used = set()
        out = []
        for k in self.person.keys:
            hit = next((s for s in cands if s["frame"] not in used and k["t_ns"] <= s["ts_ns"] <= k["t_ns"] + 2e8),
                       None)
            if hit is None:
                raise LabError(f"no 36-byte segment for key {k['key']!r} at {k['t_ns']}")
            used.add(hit["frame"])
            out.append({**{f: k[f] for f in ("key", "sent", "t_ns", "command", "intended_subflow")},
                        "subflow": hit["subflow"], "frame": hit["frame"], "seen_at_server_ns": hit["ts_ns"],
                        "typed_to_wire_ms": round((hit["ts_ns"] - k["t_ns"]) / 1e6, 3)})
        # after the last key (Enter of exit), the client's CHANNEL_CLOSE is one more 36-byte segment
        last = max(k["seen_at_server_ns"] for k in out)
        self.unmatched_36 = [{"frame": s["frame"], "subflow": s["subflow"], "ts_ns": s["ts_ns"],
                              "after_last_key": s["ts_ns"] > last} for s in cands if s["frame"] not in used]
        return out

    def client_edge_truth(self, ca, a, keys):
        """The same session at C's edge: its subflows (same client ports as at S), SYN -> SYN/ACK per subflow
        (the path's round trip seen from C), each key's segment leaving C and the first server->client data
        segment after it (the echo) arriving at C, and the same at S for the server's turnaround."""
        d = self.delay
        segs = ca["segments"]
        idx = {sf["client"]: sf["index"] for sf in a["subflows"]}  # server-side subflow index by client ip:port
        hs = handshake_rtts(ca)
        subflows = []
        for sf in ca["subflows"]:
            path = next(p["path"] for p in PATHS if sf["client"].startswith(p["client"] + ":"))
            subflows.append({"index": sf["index"], "index_at_server": idx.get(sf["client"]), "kind": sf["kind"],
                             "path": path, "client": sf["client"], "server": sf["server"],
                             "capture_interface": f"C {PATHS[path - 1]['ifname']}", "syn_frame": sf["syn_frame"],
                             "syn_ns": sf["syn_ns"], "handshake": hs[sf["index"]],
                             "expected_rtt_ms": {1: 0.0, 2: 2 * d}[path],
                             "handshake_rtt_ms": hs[sf["index"]]["syn_to_synack_ms"],
                             "packets": sum(1 for s in segs if s["subflow"] == sf["index"])})
        c2s = [s for s in segs if s["dir"] == "c2s" and s["payload"] == KEY_PAYLOAD]
        s2c = [s for s in segs if s["dir"] == "s2c" and s["payload"]]
        srv_s2c = [s for s in a["segments"] if s["dir"] == "s2c" and s["payload"]]
        used, used_echo, used_srv = set(), set(), set()
        out = []
        for i, k in enumerate(keys):
            hit = next((s for s in c2s if s["frame"] not in used and k["t_ns"] <= s["ts_ns"] <= k["t_ns"] + 2e8),
                       None)
            if hit is None:
                raise LabError(f"client edge: no 36-byte segment for key {i + 1} {k['key']!r}")
            used.add(hit["frame"])
            echo = next((s for s in s2c if s["frame"] not in used_echo and s["ts_ns"] > hit["ts_ns"]), None)
            srv_echo = next((s for s in srv_s2c if s["frame"] not in used_srv and s["ts_ns"] > k["seen_at_server_ns"]),
                            None)
            row = {"key_index": i + 1, "key": k["key"], "command": k["command"], "subflow": hit["subflow"],
                   "path": subflows[hit["subflow"] - 1]["path"], "subflow_at_server": k["subflow"],
                   "frame": hit["frame"], "left_client_ns": hit["ts_ns"],
                   "typed_to_wire_ms": round((hit["ts_ns"] - k["t_ns"]) / 1e6, 3),
                   "client_to_server_ms": round((k["seen_at_server_ns"] - hit["ts_ns"]) / 1e6, 3)}
            if echo:
                used_echo.add(echo["frame"])
                row.update(echo_frame=echo["frame"], echo_subflow=echo["subflow"], echo_payload=echo["payload"],
                           echo_at_client_ns=echo["ts_ns"],
                           key_to_echo_ms=round((echo["ts_ns"] - hit["ts_ns"]) / 1e6, 3))
            if srv_echo:
                used_srv.add(srv_echo["frame"])
                row.update(server_echo_frame=srv_echo["frame"],
                           server_turnaround_ms=round((srv_echo["ts_ns"] - k["seen_at_server_ns"]) / 1e6, 3))
            out.append(row)

        def stats(v):
            v = sorted(v)
            return {"n": len(v), "min": v[0], "median": v[len(v) // 2], "max": v[-1]} if v else {"n": 0}

        per_path = {f"path{q['path']}": {
            "key_to_echo_ms": stats([r["key_to_echo_ms"] for r in out if r["path"] == q["path"]
                                     and "key_to_echo_ms" in r]),
            "client_to_server_ms": stats([r["client_to_server_ms"] for r in out if r["path"] == q["path"]]),
            "server_turnaround_ms": stats([r["server_turnaround_ms"] for r in out if r["path"] == q["path"]
                                           and "server_turnaround_ms" in r])} for q in PATHS}
        key_frames = {}
        for sf in subflows:
            key_frames[str(sf["index"])] = [r["frame"] for r in out if r["subflow"] == sf["index"]]
        return {
            "file": CLIENT_PCAP_NAME,
            "vantage": "client C: tcpdump on eth0 (path 1) and eth1 (path 2), merged with mergecap; the same "
                       "session as ssh-mptcp.pcap, same clock (one host)",
            "linktype": "Ethernet", "timestamps": "nanosecond", "filter": None,
            "frames": len(read_pcap(self.out / CLIENT_PCAP_NAME)),
            "same_mptcp_connection": ca["facts"]["client_key"] == a["facts"]["client_key"]
                                     and ca["facts"]["server_key"] == a["facts"]["server_key"],
            "subflows": subflows,
            "handshake_rtt_ms": {str(sf["index"]): sf["handshake_rtt_ms"] for sf in subflows},
            "expected_rtt_ms": {str(sf["index"]): sf["expected_rtt_ms"] for sf in subflows},
            "handshake_rtt_note": "at C: client's SYN sent -> server's SYN/ACK received, both on C's interface of "
                                  "that subflow's path (the path's full round trip); synack_to_ack_ms is C's own "
                                  "turnaround",
            "keys_per_subflow": {k: len(v) for k, v in key_frames.items()},
            "key_frames_per_subflow": key_frames,
            "keys": out,
            "keys_note": "per key: its 36-byte segment leaving C (frame in client-edge.pcap), client_to_server_ms "
                         "= arrival at S (truth keys[].seen_at_server_ns) minus departure at C, and the echo: the "
                         "first later server->client data segment at C (36 bytes for a printable key; more for "
                         "Enter, whose reply carries the output and the prompt), key_to_echo_ms from the key "
                         "leaving C to it arriving at C; server_turnaround_ms is the same at S",
            "per_path": per_path,
        }

    def make_truth(self, pcap, a, keys):
        subflows = []
        for sf in a["subflows"]:
            c2s = [s for s in a["segments"] if s["subflow"] == sf["index"] and s["dir"] == "c2s"]
            path = next(p["path"] for p in PATHS if sf["client"].startswith(p["client"] + ":"))
            subflows.append({**sf, "path": path, "capture_interface": f"S {PATHS[path - 1]['ifname']}",
                             "syn_time": runlab.rfc3339_ns(sf["syn_ns"]),
                             "keys": sum(1 for k in keys if k["subflow"] == sf["index"]),
                             "c2s_36_byte_segments": sum(1 for s in c2s if s["payload"] == KEY_PAYLOAD),
                             "packets": sum(1 for s in a["segments"] if s["subflow"] == sf["index"])})
        p = self.person
        truth = {
            "schema": SCHEMA,
            "description": "one interactive OpenSSH session over Multipath TCP (v1, RFC 8684) with two subflows: "
                           "the first (MP_CAPABLE) on path 1, the second (MP_JOIN, to the address S announced "
                           "with ADD_ADDR) on path 2; path 1 is marked backup for command 2 so its keys travel "
                           "on subflow 2",
            "pcap": PCAP_NAME,
            "capture": {"vantage": "server S: tcpdump on eth0 (path 1) and eth1 (path 2), merged with mergecap",
                        "linktype": "Ethernet", "timestamps": "nanosecond", "filter": None},
            "captures": [{"file": PCAP_NAME, "vantage": "server S eth0+eth1",
                          "interfaces": {f"path{q['path']}": f"S {q['ifname']}" for q in PATHS},
                          "frames": len(read_pcap(pcap))}],
            "session_start_ns": p.started_ns, "session_start": runlab.rfc3339_ns(p.started_ns),
            "session_start_note": "CLOCK_REALTIME when ssh was started on its pty; the first SYN is syn_ns of "
                                  "subflow 1",
            "session_end_ns": self.end_ns,
            "typed_keys": len(keys),
            "keys_per_subflow": {str(sf["index"]): sf["keys"] for sf in subflows},
            "first_subflow": 1,
            "subflows": subflows,
            "commands": [{"index": i + 1, "text": c[0], "keys": len(c[0]) + 1, "path_manager_before": c[1],
                          "intended_subflow": c[2]} for i, c in enumerate(self.commands)],
            "path_manager_events": self.events,
            "keys": keys,
            "unmatched_c2s_36_byte_segments": self.unmatched_36,
            "session_end_c2s": [{"frame": s["frame"], "subflow": s["subflow"], "payload": s["payload"],
                                 "ts_ns": s["ts_ns"]}
                                for s in a["segments"] if s["dir"] == "c2s" and s["payload"]
                                and s["ts_ns"] > keys[-1]["seen_at_server_ns"]],
            "session_end_note": "after the last key the client sends CHANNEL_CLOSE (36 bytes) and DISCONNECT "
                                "(60 bytes); the scheduler may put them on different subflows",
            "mptcp": a["facts"],
            "addresses": {"client": {f"path{q['path']}": f"{q['client']} (C {q['ifname']})" for q in PATHS},
                          "server": {f"path{q['path']}": f"{q['server']} (S {q['ifname']})" for q in PATHS}},
            "path_manager": self.pm,
            "ss_at_start": {"subflows": self.ss_subflows, "ss_M": self.ss_mptcp},
            "software": {
                "ssh": subprocess.run(["ssh", "-V"], stderr=subprocess.PIPE, text=True).stderr.strip(),
                "kernel": os.uname().release, "cipher": runlab.CIPHER,
                "mptcpize": "mptcpize run (LD_PRELOAD libmptcpwrap: socket(AF_INET, SOCK_STREAM, IPPROTO_TCP) -> "
                            "IPPROTO_MPTCP) for both ssh and sshd",
                "typist": "lab/messy_typist.py Person, pty 80x24, TERM=xterm-256color, gaps 0.15-0.30 s",
                "seed": self.args.seed,
            },
        }
        if self.delay:
            self.add_delay_truth(truth, a)
        return truth

    def add_delay_truth(self, truth, a):
        """--path2-delay-ms D > 0: the delay, expected and measured round trips at the capture point (S)."""
        d = self.delay
        expected = {1: 0.0, 2: 2 * d}
        hs = handshake_rtts(a)
        for sf in truth["subflows"]:
            sf["expected_rtt_at_capture_ms"] = expected[sf["path"]]
            sf["handshake_at_capture"] = hs[sf["index"]]
            sf["handshake_rtt_at_capture_ms"] = hs[sf["index"]]["synack_to_ack_ms"]
        truth["description"] += (f"; path 2 runs through a userspace delaying bridge ({d} ms one way, each "
                                 f"direction), path 1 is direct, so at S the join subflow's round trip is "
                                 f"~{2 * d} ms and the first subflow's ~0")
        truth["path2_one_way_delay_ms"] = d
        truth["expected_rtt_at_capture_ms"] = {str(sf["index"]): sf["expected_rtt_at_capture_ms"]
                                               for sf in truth["subflows"]}
        truth["handshake_rtt_at_capture_ms"] = {str(sf["index"]): sf["handshake_rtt_at_capture_ms"]
                                                for sf in truth["subflows"]}
        truth["handshake_rtt_note"] = ("SYN/ACK sent by S -> client's third ACK received by S, both on S's "
                                       "interface of that subflow's path: the path's full round trip")
        truth["paths"] = {
            "path1": {"one_way_delay_ms": 0, "link": "C eth0 <-veth-> S eth0 (direct)"},
            "path2": {"one_way_delay_ms": d,
                      "link": f"C eth1 <-veth-> B {BRIDGE_IFS[0]} ... delaying bridge ... B {BRIDGE_IFS[1]} "
                              "<-veth-> S eth1 (B has no IP addresses)",
                      "bridge": f"lab/run-lab.py _bridge --a {BRIDGE_IFS[0]} --b {BRIDGE_IFS[1]} --delay-ms {d} "
                                f"--jitter-ms 0 (AF_PACKET, userspace; kernel netem is unavailable)",
                      "bridge_stats": self.bridge_stats},
        }
        truth["ping_before_capture"] = {f"path{k}": v for k, v in self.pings.items()}

    def close(self):
        if self.person:
            self.person.close()
        self.lab.cleanup()
        if self.args.keep_work:
            log(f"work files kept in {self.work}")
        else:
            shutil.rmtree(self.work, ignore_errors=True)


def check(truth, pcap):
    """Cross-checks: keys vs segments, intended subflows, token and HMACs, and tshark's reading of the same options."""
    res = {}
    f = truth["mptcp"]

    def verdict(name, ok, detail=None):
        res[name] = {"ok": bool(ok), **({"detail": detail} if detail is not None else {})}

    extra = truth["unmatched_c2s_36_byte_segments"]
    verdict("each key one 36-byte segment (one more after the last key: CHANNEL_CLOSE)",
            len(extra) <= 1 and all(x["after_last_key"] for x in extra), {"not_keys": extra})
    wrong = [k["frame"] for k in truth["keys"] if k["subflow"] != k["intended_subflow"]]
    verdict("keys on the intended subflow", not wrong, {"frames_elsewhere": wrong})
    verdict("both subflows carry keys", all(v > 0 for v in truth["keys_per_subflow"].values()),
            truth["keys_per_subflow"])
    verdict("MPTCP version 1", f["mptcp_version"] == 1, f["mptcp_version"])
    verdict("MP_JOIN token is the server's", f["join"]["token_matches"] == "server", f["join"]["token_in_syn"])
    verdict("MP_JOIN HMACs", f["join"]["synack_truncated_hmac_ok"] and f["join"]["ack_hmac_ok"])
    verdict("ADD_ADDR HMAC", all(r.get("hmac_ok", True) for r in f["add_addr"]))
    d = truth.get("path2_one_way_delay_ms", 0)
    if d:  # delayed path 2: round trips at S as designed, and keys on subflow 2 really crossed the bridge
        rtt = {sf["path"]: sf["handshake_rtt_at_capture_ms"] for sf in truth["subflows"]}
        verdict(f"join handshake RTT at S ~ 2*{d} ms", 2 * d - 0.5 <= rtt[2] <= 2 * d + 5, rtt[2])
        verdict("first subflow handshake RTT at S < 2 ms", rtt[1] < 2, rtt[1])
        on2 = [k["typed_to_wire_ms"] for k in truth["keys"] if k["subflow"] == 2]
        verdict(f"subflow-2 keys reach S >= {d} ms after typing", on2 and min(on2) >= d,
                {"min_ms": min(on2) if on2 else None, "max_ms": max(on2) if on2 else None})
    ce = truth.get("client_edge")
    if ce:  # client edge (C eth0+eth1) of the same session
        rtt = {sf["path"]: sf["handshake_rtt_ms"] for sf in ce["subflows"]}
        verdict("client edge: same MPTCP connection (keys) as at S", ce["same_mptcp_connection"])
        verdict("client edge: same subflows (client ports, order) as at S",
                [(sf["client"], sf["server"], sf["kind"]) for sf in ce["subflows"]]
                == [(sf["client"], sf["server"], sf["kind"]) for sf in truth["subflows"]]
                and all(sf["index"] == sf["index_at_server"] for sf in ce["subflows"]))
        verdict(f"client edge: join SYN -> SYN/ACK at C ~ 2*{d} ms", 2 * d - 0.5 <= rtt[2] <= 2 * d + 5, rtt[2])
        verdict("client edge: first subflow SYN -> SYN/ACK at C < 2 ms", rtt[1] < 2, rtt[1])
        wrong = [r["key_index"] for r in ce["keys"] if r["subflow"] != r["subflow_at_server"]]
        verdict("client edge: every key leaves C on the subflow it reaches S on",
                len(ce["keys"]) == truth["typed_keys"] and not wrong, {"keys_elsewhere": wrong})
        e1 = [r.get("key_to_echo_ms") for r in ce["keys"] if r["path"] == 1]
        e2 = [r.get("key_to_echo_ms") for r in ce["keys"] if r["path"] == 2]
        verdict(f"client edge: path-2 key -> echo >= 2*{d} ms, path-1 key -> echo < {d} ms",
                None not in e1 + e2 and e2 and min(e2) >= 2 * d and max(e1) < d,
                {"path1": ce["per_path"]["path1"]["key_to_echo_ms"], "path2": ce["per_path"]["path2"]["key_to_echo_ms"]})
    if shutil.which("tshark"):
        pcaps = [("", pcap)] + ([("client edge: ", Path(pcap).parent / ce["file"])] if ce else [])
        for label, pc in pcaps:
            r = subprocess.run(["tshark", "-r", str(pc), "-o", "mptcp.analyze_mptcp:TRUE", "-Y", "mptcp",
                                "-T", "fields", "-E", "separator=|", "-e", "frame.number",
                                "-e", "tcp.options.mptcp.version",
                                "-e", "tcp.options.mptcp.sendkey", "-e", "tcp.options.mptcp.recvkey",
                                "-e", "tcp.options.mptcp.recvtok", "-e", "mptcp.expected_token",
                                "-e", "mptcp.stream", "-e", "tcp.options.mptcp.rawdataseqno"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            rows = [line.split("|") for line in r.stdout.splitlines()]

            def col(i):  # tshark prints these integers in decimal (or 0x hex); several per frame comma-separated
                return {int(v, 0) for x in rows if len(x) > i and x[i] for v in x[i].split(",")}

            tv, tkeys, ttok, streams = col(1), col(2) | col(3), col(4), col(6)
            verdict(f"{label}tshark: version", tv == {1}, sorted(tv))
            verdict(f"{label}tshark: keys", tkeys == {int(f["client_key"], 16), int(f["server_key"], 16)},
                    [f"{k:016x}" for k in sorted(tkeys)])
            verdict(f"{label}tshark: join token", ttok == {int(f["server_token"], 16)},
                    [f"{t:08x}" for t in sorted(ttok)])
            verdict(f"{label}tshark: tokens it derives from the keys", col(5) == {int(f["client_token"], 16),
                                                                              int(f["server_token"], 16)},
                    [f"{t:08x}" for t in sorted(col(5))])
            verdict(f"{label}tshark: one MPTCP connection", len(streams) == 1, sorted(streams))
    else:
        res["tshark"] = {"ok": True, "detail": "tshark missing: not checked"}
    failed = [k for k, v in res.items() if not v["ok"]]
    return {"all_ok": not failed, "failed": failed, "results": res}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", help=f"output directory (default {DEFAULT_OUT}; with --path2-delay-ms 20 "
                                  f"{SLOW_JOIN_OUT}, with another D {SLOW_JOIN_OUT}-dD)")
    ap.add_argument("--path2-delay-ms", type=float, default=0.0, metavar="D",
                    help="one-way delay of path 2 in ms, each direction, through run-lab.py's userspace delaying "
                         "bridge in namespace B (default 0: path 2 is a direct veth pair, no bridge)")
    ap.add_argument("--seed", type=int, default=1, help="seed for the typing gaps (default 1)")
    ap.add_argument("--keep-work", action="store_true", help="keep the work directory (raw pcaps, configs, logs)")
    ap.add_argument("--analyze", metavar="PCAP", help="only decode the MPTCP facts of an existing pcap (JSON out)")
    args = ap.parse_args()
    if args.path2_delay_ms < 0:
        ap.error("--path2-delay-ms must be >= 0")
    if args.out is None:
        d = args.path2_delay_ms
        args.out = str(DEFAULT_OUT if d == 0 else SLOW_JOIN_OUT if d == 20 else f"{SLOW_JOIN_OUT}-d{d:g}")
    if args.analyze:
        a = analyze(args.analyze)
        json.dump({"subflows": a["subflows"], "facts": a["facts"]}, sys.stdout, indent=1)
        print()
        return 0
    if os.geteuid() != 0:
        sys.exit("mptcp.py must run as root (network namespaces, tcpdump)")
    for tool in ("ip", "ethtool", "tcpdump", "mergecap", "ssh", "sshd", "mptcpize", "ss"):
        if not shutil.which(tool):
            sys.exit(f"missing tool: {tool} (scripts/setup.sh --deps installs it)")
    if subprocess.run(["sysctl", "-n", "net.mptcp.enabled"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                      text=True).stdout.strip() != "1":
        sys.exit("this kernel has no MPTCP (sysctl net.mptcp.enabled is not 1)")
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    run = Run(args)
    try:
        run.build()
        run.start_sshd()
        run.begin_capture()
        run.session()
        truth = run.finish()
    except (LabError, PersonError, subprocess.SubprocessError, OSError) as e:
        log(f"FAILED: {e}")
        return 1
    except KeyboardInterrupt:
        log("interrupted: namespaces and processes removed")
        return 130
    finally:
        run.close()
    c = truth["check"]
    log(f"{truth['typed_keys']} keys, per subflow {truth['keys_per_subflow']}, check "
        f"{'ok' if c['all_ok'] else 'NOT ok: ' + '; '.join(c['failed'])}; output in {run.out}")
    return 0 if c["all_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
