#!/usr/bin/env python3
"""Ground-truth lab for echoloc's RDP analysis: a real RDP server (xrdp + xorgxrdp, Debian 12) and a real client
(xfreerdp under Xvfb) in network namespaces joined by the lab's delaying bridges, a scripted typist injecting key
presses and pointer moves with XTEST into the client's display, captures at known vantages and a truth.json beside
them. Run as root, one lab at a time (`flock /tmp/echoloc-lab.lock ...`):

    python3 lab/rdp-lab.py                                   # every scenario at every setting -> pcaps/rdp/
    python3 lab/rdp-lab.py --scenario portfwd --setting tr100-rs10 --out /tmp/rdp

Scenarios (T typist/client, R middle host, S server; see lab/README.md "RDP lab"):
    direct    T -> S:3389 on one L2 segment through both bridges
    routed    T -> S:3389 through R forwarding IP
    portfwd   T -> R:3389, socat on R forwards to S:3389 (a port forwarder: a relay)
    tlsrelay  T's local socat wraps the RDP stream in TLS to R:443, R unwraps it to S:3389 (an RD Gateway
              stand-in: the sensor at the server edge sees R's plain RDP connection, the far client behind it)
    mouse     direct, with pointer movement between lines
    pointer   direct, pointer movement only and nobody typing (a negative control: no keystrokes)
    paste     direct, a line pasted from the client's clipboard (Shift+Insert) after every other line
    nla       direct, FreeRDP's shadow server (freerdp-shadow-cli, CredSSP/NLA) instead of xrdp, shadowing an
              Xvfb display in S with the session's xterm on it
    nlafwd    nla behind portfwd's socat on R

    python3 lab/rdp-lab.py retruth pcaps/rdp/*/                # truth.json again from the captures and key log

Internal modes: `_typist` (lab_xtest.py), and run-lab.py's `_bridge`.
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lab_common import IP, REPO, LabError, log, r3  # noqa: E402
from lab_net import Lab, build_line, start_bridge, start_capture  # noqa: E402
from lab_rdp_truth import truth_for  # noqa: E402
from lab_xtest import plan_pointer, plan_session, typist_main  # noqa: E402

DEFAULT_OUT = REPO / "pcaps" / "rdp"
SELF = Path(__file__).resolve()
USER, PASSWORD = "rdplab", "rdplab-lab-pw"
SNAPLEN = 128

SETTINGS = {
    "tr20-rs10": {"tr_ms": 20.0, "rs_ms": 10.0, "jitter_ms": 0.0},
    "tr5-rs15": {"tr_ms": 5.0, "rs_ms": 15.0, "jitter_ms": 0.0},
    "tr100-rs10": {"tr_ms": 100.0, "rs_ms": 10.0, "jitter_ms": 0.0},  # a far client: 100 ms one way
    "tr20-rs10-j3": {"tr_ms": 20.0, "rs_ms": 10.0, "jitter_ms": 3.0},
}
SCENARIOS = ["direct", "routed", "portfwd", "tlsrelay", "mouse", "pointer", "paste", "nla", "nlafwd"]
MIDDLE = {"direct": None, "mouse": None, "pointer": None, "paste": None, "routed": "router", "portfwd": "relay", "tlsrelay": "relay",
          "nla": None, "nlafwd": "relay"}
LINES = ["echo hello world", "ls -la /tmp", "cat notes.txt", "uptime", "echo done"]
TLS_PORT = 443


def server_config(work):
    """xrdp and sesman configuration of this run (TLS, RemoteFX, logs in the work directory)."""
    etc = work / "xrdp"
    shutil.copytree("/etc/xrdp", etc)
    ini = (etc / "xrdp.ini").read_text()
    ini = ini.replace("\nport=3389", "\nport=tcp://:3389").replace("\nautorun=\n", "\nautorun=Xorg\n")
    ini = ini.replace("\nsecurity_layer=negotiate", "\nsecurity_layer=tls")
    ini = ini.replace("LogFile=xrdp.log", f"LogFile={work}/xrdp.log").replace("EnableSyslog=true", "EnableSyslog=false")
    (etc / "xrdp.ini").write_text(ini)
    ses = (etc / "sesman.ini").read_text()
    ses = ses.replace("LogFile=xrdp-sesman.log", f"LogFile={work}/sesman.log")
    ses = ses.replace("EnableSyslog=true", "EnableSyslog=false")
    (etc / "sesman.ini").write_text(ses)
    return etc


def ensure_user():
    """The session's user, whose window manager is one xterm (what the typist types into)."""
    if subprocess.run(["id", USER], capture_output=True).returncode != 0:
        subprocess.run(["useradd", "-m", "-s", "/bin/bash", USER], check=True)
    subprocess.run(["chpasswd"], input=f"{USER}:{PASSWORD}\n", text=True, check=True)
    home = Path(f"/home/{USER}")
    wm = home / "startwm.sh"
    # Shift+Insert pastes the CLIPBOARD (what xrdp's clipboard channel fills), not PRIMARY
    wm.write_text("#!/bin/sh\nexec xterm -geometry 80x24+0+0 -fa Monospace -fs 11 "
                  "-xrm 'XTerm*VT100.translations: #override Shift <Key>Insert: insert-selection(CLIPBOARD)'\n")
    wm.chmod(0o755)
    (home / "notes.txt").write_text("a note\n")
    shutil.chown(wm, USER, USER)
    Path("/var/run/xrdp").mkdir(exist_ok=True)


def tls_cert(work):
    key, crt = work / "relay.key", work / "relay.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", crt,
                    "-days", "2", "-subj", "/CN=relay.example"], check=True, capture_output=True)
    pem = work / "relay.pem"
    pem.write_text(key.read_text() + crt.read_text())
    return pem


def start_shadow(lab, work):
    """FreeRDP's shadow server in S (CredSSP/NLA against a SAM file) showing an Xvfb display with the xterm on it."""
    display = f":{80 + os.getpid() % 9}"
    lab.spawn("xvfb-s", "S", ["Xvfb", display, "-screen", "0", "800x600x24", "-nolisten", "tcp"])
    for _ in range(100):  # the shadow server exits when it cannot open the display
        if Path(f"/tmp/.X11-unix/X{display[1:]}").exists():
            break
        time.sleep(0.1)
    time.sleep(0.5)
    lab.spawn("xterm-s", "S", ["runuser", "-u", USER, "--", "env", f"DISPLAY={display}", f"HOME=/home/{USER}",
                               "sh", "-c", "cd && exec ./startwm.sh"])
    sam = work / "sam"
    sam.write_text(subprocess.run(["winpr-hash", "-u", USER, "-p", PASSWORD, "-f", "sam"], capture_output=True,
                                  text=True, check=True).stdout)
    # its TLS certificate goes to $HOME/.config/freerdp/server
    lab.spawn("shadow", "S", ["env", f"DISPLAY={display}", f"HOME={work}", "WLOG_LEVEL=WARN", "freerdp-shadow-cli",
                              "/port:3389", "/sec:nla", f"/sam-file:{sam}"],
              stdout=open(work / "shadow.log", "w"), stderr=subprocess.STDOUT)


def run_one(scn, setting_name, setting, args, outroot):
    d1, d2, jit = setting["tr_ms"], setting["rs_ms"], setting["jitter_ms"]
    name = f"{scn}-{setting_name}"
    out = outroot / name
    work = Path(tempfile.mkdtemp(prefix="echoloc-rdp-"))
    lab = Lab()
    try:
        links, t_ip, s_ip = build_line(lab, MIDDLE[scn], d1, d2)
        bridges = [start_bridge(lab, i, a, b, d, jit, args.seed + i, work)[0] for i, (a, b, d) in enumerate(links)]
        if scn.startswith("nla"):
            start_shadow(lab, work)
        else:
            etc = server_config(work)
            lab.spawn("sesman", "S", ["xrdp-sesman", "-n", "-c", etc / "sesman.ini"])
            time.sleep(0.5)
            lab.spawn("xrdp", "S", ["xrdp", "-n", "-c", etc / "xrdp.ini"])
        lab.wait_listen("S", 3389)
        target = f"{s_ip}:3389"
        if scn in ("portfwd", "nlafwd"):
            lab.spawn("socat", "R", ["socat", f"TCP-LISTEN:3389,bind={IP['R_t']},reuseaddr,fork,nodelay",
                                     f"TCP:{IP['S']}:3389,nodelay"])
            lab.wait_listen("R", 3389)
            target = f"{IP['R_t']}:3389"
        elif scn == "tlsrelay":
            pem = tls_cert(work)
            lab.spawn("socat-r", "R", ["socat", f"OPENSSL-LISTEN:{TLS_PORT},bind={IP['R_t']},reuseaddr,fork,"
                                       f"cert={pem},verify=0,nodelay", f"TCP:{IP['S']}:3389,nodelay"])
            lab.spawn("socat-t", "T", ["socat", "TCP-LISTEN:13389,bind=127.0.0.1,reuseaddr,fork,nodelay",
                                       f"OPENSSL:{IP['R_t']}:{TLS_PORT},verify=0,nodelay"])
            lab.wait_listen("R", TLS_PORT)
            lab.wait_listen("T", 13389)
            target = "127.0.0.1:13389"
        vantages = {"server_edge": ("S", "eth0"), "typist_edge": ("T", "eth0")}
        if MIDDLE[scn]:
            vantages["relay_outer"] = ("R", "eth0")
        caps = [start_capture(lab, v, role, ifn, out / f"{v.replace('_', '-')}.pcap", SNAPLEN)
                for v, (role, ifn) in vantages.items()]
        display = f":{90 + os.getpid() % 9}"
        lab.spawn("xvfb", "T", ["Xvfb", display, "-screen", "0", "1024x768x24", "-nolisten", "tcp"])
        time.sleep(1.0)
        client = lab.spawn("xfreerdp", "T", ["env", f"DISPLAY={display}", "xfreerdp", f"/v:{target}",
                                             f"/u:{USER}", f"/p:{PASSWORD}", "/cert:ignore", "/size:800x600",
                                             "/rfx", "-sound", "/log-level:ERROR"],
                           stdout=open(work / "xfreerdp.log", "w"), stderr=subprocess.STDOUT)
        time.sleep(6.0 + 40 * (d1 + d2) / 1000)  # the login and the first screen (dozens of round trips)
        if client.poll() is not None:
            raise LabError(f"xfreerdp ended: {(work / 'xfreerdp.log').read_text()[-400:]}")
        plan = (plan_pointer(args.seed) if scn == "pointer" else plan_session(LINES, args.seed, mouse=(scn == "mouse"), paste=(scn == "paste")))
        plan.insert(0, {"op": "move", "x": 400, "y": 300, "after_s": 0.0})  # the pointer into the window
        (work / "plan.json").write_text(json.dumps(plan))
        lab.run(sys.executable, SELF, "_typist", "--display", display, "--plan", work / "plan.json",
                "--out", work / "typed.json", ns="T")
        time.sleep(2.0 + 4 * (d1 + d2) / 1000)
        lab.stop(client)
        time.sleep(0.5 + 2 * (d1 + d2) / 1000)
        for c in caps:
            lab.stop(c)
        for b in bridges:
            lab.stop(b)
        typed = json.loads((work / "typed.json").read_text())
        truth = truth_for(scn, name, setting, typed, out, list(vantages), args.seed)
        (out / "truth.json").write_text(json.dumps(truth, indent=1) + "\n")
        log(f"{name}: {truth['keys_typed']} keys, render {truth['render_ms']} ms")
        return truth
    finally:
        lab.cleanup()
        if not args.keep_work:
            shutil.rmtree(work, ignore_errors=True)


def retruth(dirs):
    """Work out truth.json again from a set's captures and its logged keys (after a change to lab_rdp_truth)."""
    for d in map(Path, dirs):
        old = json.loads((d / "truth.json").read_text())
        typed = [{"op": "key", "down_ns": k[0], "up_ns": k[1], "combo": len(k) > 2} for k in old["key_times_ns"]]
        typed += [{"op": "move"}] * old["pointer_moves"] + [{"op": "paste"}] * old.get("pastes", 0)
        setting = {"tr_ms": old["delays_ms"]["typist_relay"], "rs_ms": old["delays_ms"]["relay_server"],
                   "jitter_ms": old["delays_ms"]["jitter"]}
        truth = truth_for(old["scenario"], old["set"], setting, typed, d, list(old["vantages"]), old["seed"])
        (d / "truth.json").write_text(json.dumps(truth, indent=1) + "\n")
        log(f"{d.name}: render {truth['render_ms']} ms")


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "_typist":
        return typist_main(sys.argv[2:])
    if len(sys.argv) > 1 and sys.argv[1] == "retruth":
        return retruth(sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenario", default="all")
    ap.add_argument("--setting", default="all")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keep-work", action="store_true")
    a = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root (namespaces, xrdp)")
    # SIGTERM (timeout, kill) ends the run through its cleanup, like Ctrl-C
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    scns = SCENARIOS if a.scenario == "all" else a.scenario.split(",")
    sets = list(SETTINGS) if a.setting == "all" else a.setting.split(",")
    ensure_user()
    failed = []
    for scn in scns:
        for s in sets:
            if scn in ("mouse", "pointer", "paste") and s != sets[0]:
                continue  # pointer movement is one set each, at the first setting
            (a.out / f"{scn}-{s}").mkdir(parents=True, exist_ok=True)
            try:
                run_one(scn, s, SETTINGS[s], a, a.out)
            except LabError as e:
                log(f"{scn}-{s}: FAILED: {e}")
                failed.append(f"{scn}-{s}")
    if failed:
        raise SystemExit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
