"""Truth of an RDP lab set: what each vantage should measure, from the configured delays (lab_truth.expected_at,
the same geometry as the SSH lab) plus the two host times no delay explains, measured where they happen:

- render: xrdp drawing a key (key press arriving at S's own interface -> the first burst of data segments S
  begins after it);
- client acknowledgement: xfreerdp answering a frame (the frame's last segment arriving at T's own interface -> T's
  Frame Acknowledge, a client record of the acknowledgement size).

The sizes come from the captures themselves: at S's interface the key size is the most common client segment size
sent while the typist typed (presses and releases are one size), the acknowledgement size the most common size
of a client segment sent within 5 ms of server data."""

import collections
import subprocess

from lab_common import r3
from lab_truth import expected_at, positions

LAB_SCENARIO = {"direct": "direct", "mouse": "direct", "pointer": "direct", "paste": "direct", "routed": "routed", "portfwd": "portfwd", "tlsrelay": "portfwd",
                "nla": "direct", "nlafwd": "portfwd"}
SERVER = {"xrdp": "xrdp 0.9.21.1 + xorgxrdp (Debian 12), TLS, RemoteFX",
          "shadow": "freerdp-shadow-cli 2.11.7 (freerdp2-shadow-x11, Debian 12) shadowing Xvfb, CredSSP/NLA, RemoteFX"}


def segments(pcap, server_port):
    """(time s, from client?, tcp payload length) of the data segments of the RDP connection in a capture."""
    out = subprocess.run(["tshark", "-r", str(pcap), "-T", "fields", "-e", "frame.time_epoch", "-e", "tcp.srcport",
                          "-e", "tcp.dstport", "-e", "tcp.len", "-Y", f"tcp.port == {server_port} && tcp.len > 0"],
                         capture_output=True, text=True, check=True).stdout
    segs = []
    for line in out.splitlines():
        t, sp, dp, ln = line.split("\t")
        segs.append((float(t), int(dp) == server_port, int(ln)))
    return segs


def quantiles(xs):
    xs = sorted(xs)
    if not xs:
        return None
    return {"floor": r3(xs[0]), "p50": r3(xs[len(xs) // 2]), "max": r3(xs[-1]), "n": len(xs)}


def render_times(segs, typed, one_way_s):
    """Per key press: its segment at S's interface -> S's first data segment after it (ms). Presses and releases
    leave as segments of one size, in order: the i-th press is the (2i)-th of them once typing began."""
    first = typed[0]["down_ns"] / 1e9 + one_way_s - 0.002
    window = [s for s in segs if s[1] and s[0] >= first]
    key_size = collections.Counter(ln for _, _, ln in window).most_common(1)[0][0]
    keyish = [s for s in window if s[2] == key_size]
    combos = any(k.get("combo") for k in typed)
    if len(keyish) == 2 * len(typed) and not combos:
        presses = keyish[0::2]
    else:
        # a record lost or two joined on the way (a relay): each press by its time, one way after it was typed
        presses = []
        # (a key held while another is pressed, Shift+Insert, is not timed: its records do not alternate)
        for k in (k for k in typed if not k.get("combo")):
            at = k["down_ns"] / 1e9 + one_way_s
            p = next((s for s in keyish if at - 0.002 <= s[0] < at + 0.05), None)
            if p:
                presses.append(p)
    # A burst (server segments less than 3 ms apart) under way when the key arrived is not its echo: its first
    # burst begun after the key is.
    server = [s for s in segs if not s[1]]
    starts = [s[0] for i, s in enumerate(server) if i == 0 or s[0] - server[i - 1][0] > 0.003]
    out = []
    for key in presses:
        # a key typed while a large update was still being sent (within 200 ms of a full segment) is not timed
        if any(not c and ln >= 1000 and 0 <= key[0] - t < 0.2 for t, c, ln in segs):
            continue
        echo = next((t for t in starts if t > key[0]), None)
        if echo and echo - key[0] < 0.5:
            out.append((echo - key[0]) * 1000)
    return key_size, out


def ack_times(segs):
    """xfreerdp's frame acknowledgements at T's interface: server data -> the client's next segment of the
    acknowledgement size (ms)."""
    after = collections.Counter()
    for i in range(1, len(segs)):
        if segs[i][1] and not segs[i - 1][1] and segs[i][0] - segs[i - 1][0] < 0.005:
            after[segs[i][2]] += 1
    if not after:
        return None, []
    ack_size = after.most_common(1)[0][0]
    out = [(segs[i][0] - segs[i - 1][0]) * 1000 for i in range(1, len(segs))
           if segs[i][1] and segs[i][2] == ack_size and not segs[i - 1][1]]
    return ack_size, out


def truth_for(scn, name, setting, typed, out, vantages, seed):
    d1, d2 = setting["tr_ms"], setting["rs_ms"]
    keys = [k for k in typed if k["op"] == "key"]
    moves = [k for k in typed if k["op"] == "move"]
    pastes = [k for k in typed if k["op"] == "paste"]
    lab_scn = LAB_SCENARIO[scn]
    pos = positions(lab_scn, d1, d2)
    server_port = 3389
    key_size, render = (render_times(segments(out / "server-edge.pcap", server_port), keys, (d1 + d2) / 1000)
                        if keys else (None, []))
    client_port = 13389 if scn == "tlsrelay" else 3389
    typist = segments(out / "typist-edge.pcap", 443 if scn == "tlsrelay" else client_port)
    ack_size, acks = ack_times(typist)
    render_q, ack_q = quantiles(render), quantiles(acks)
    per_vantage = {}
    for v in vantages:
        e = expected_at(lab_scn, 2, d1, d2, pos[v])
        e["echo_floor_ms"] = r3(e["keystroke_to_echo_ms"] + render_q["floor"]) if render_q else None
        if ack_q:
            e["frame_ack_rtt_floor_ms"] = r3(e["application_rtt_ms"]["client_side"] + ack_q["floor"])
        e["file"] = f"{v.replace('_', '-')}.pcap"
        e["rdp_in_clear"] = not (scn == "tlsrelay" and v != "server_edge")
        per_vantage[v] = e
    return {
        "schema": "echoloc-rdp-lab-truth/1",
        "set": name,
        "scenario": scn,
        "delays_ms": {"typist_relay": d1, "relay_server": d2, "jitter": setting["jitter_ms"]},
        "seed": seed,
        "keys_typed": len(keys),
        "key_events": 2 * len(keys),
        "pointer_moves": len(moves),
        "pastes": len(pastes),
        "key_record_bytes_at_server": key_size,
        "frame_ack_bytes_at_client": ack_size,
        "render_ms": render_q,
        "client_ack_ms": ack_q,
        # what the server is configured to select: xrdp security_layer=tls, the shadow server /sec:nla
        "security": "credssp" if scn.startswith("nla") else "tls",
        "software": {"server": SERVER["shadow" if scn.startswith("nla") else "xrdp"],
                     "client": "xfreerdp 2 (freerdp2-x11, Debian 12) /rfx under Xvfb"},
        "vantages": per_vantage,
        "key_times_ns": [[k["down_ns"], k["up_ns"]] + ([1] if k.get("combo") else []) for k in keys],
    }
