"""`run-lab.py exec`: non-interactive ssh sessions over one delaying bridge (pcaps/exec)."""

import argparse
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from lab_common import CIPHER, IP, REPO, SW, log
from lab_net import Lab, start_bridge, start_capture
from lab_ssh import CLIENT_CONFIG, make_keys, start_sshd


def exec_main(argv):
    """Non-interactive ssh (`ssh server 'echo ...' </dev/null`, nobody types) over one delaying bridge,
    captured at the server's edge with a 96-byte snap length. Truth: no keystrokes and no relay."""
    p = argparse.ArgumentParser(prog="run-lab.py exec", description=exec_main.__doc__)
    p.add_argument("--out", default=str(REPO / "pcaps" / "exec" / "jitter-server-edge.pcap"))
    p.add_argument("--sessions", type=int, default=20)
    p.add_argument("--delay-ms", type=float, default=10.0, help="one-way delay (default 10)")
    p.add_argument("--jitter-ms", type=float, default=8.0, help="uniform +- per frame (default 8)")
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args(argv)
    out = Path(a.out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="echoloc-exec-"))
    lab = Lab()
    try:
        make_keys(work)
        for role in ("T", "B", "S"):
            lab.add_ns(role)
        lab.veth("T", "eth0", "B", "t0")
        lab.veth("S", "eth0", "B", "s0")
        lab.addr("T", "eth0", IP["T_direct"] + "/24")
        lab.addr("S", "eth0", IP["S_direct"] + "/24")
        start_bridge(lab, 0, "t0", "s0", a.delay_ms, a.jitter_ms, a.seed, work)
        start_sshd(lab, "S", "server", work, work)
        lab.wait_listen("S", 22)
        client_cfg = work / "ssh_config"
        client_cfg.write_text(CLIENT_CONFIG.format(relay=IP["S_direct"], server=IP["S_direct"],
                                                   key=work / "id_ed25519", cipher=CIPHER, extra=""))
        lab.ping("T", IP["S_direct"], count=3)  # ARP resolved before the capture starts
        dump = start_capture(lab, "server_edge", "S", "eth0", out, snaplen=96)
        time.sleep(0.3)
        for i in range(a.sessions):
            subprocess.run(["ip", "netns", "exec", lab.ns("T"), SW["ssh"], "-F", client_cfg, "server",
                            f"echo exec-{i + 1}"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, check=True)
        time.sleep(0.5)
        lab.stop(dump, signal.SIGINT)
    finally:
        lab.cleanup()
        shutil.rmtree(work, ignore_errors=True)
    log(f"exec: {a.sessions} sessions, one-way {a.delay_ms} ms +-{a.jitter_ms} ms -> {out}")
    return 0
