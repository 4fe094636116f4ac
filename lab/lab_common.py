"""Shared by the lab's modules: paths, the OpenSSH binaries in use (SW), the lab's addresses, LabError and the
small helpers (log, rfc3339_ns, r3).

run-lab.py is the entry point; see its docstring and lab/README.md."""

import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_OUT = REPO / "pcaps" / "lab"
SCHEMA = "echoloc-lab-truth/1"
# this lab's entry point: the bridge and ping helper modes are started as `run-lab.py _bridge|_ping`
RUN_LAB = HERE / "run-lab.py"

SSHD = "/usr/sbin/sshd"
CIPHER = "chacha20-poly1305@openssh.com"

# OpenSSH binaries in use: Debian's by default; `--openssh-prefix DIR` switches client and every sshd to a build
# installed under DIR (DIR/bin/ssh, DIR/sbin/sshd, DIR/libexec/sshd-{session,auth}), e.g. OpenSSH 10.0 with
# keystroke-timing obfuscation. Set once in main() (run-lab.py).
SW = {"prefix": None, "ssh": "ssh", "sshd": SSHD, "obscure": None, "use_pam_line": True, "source": None}
# OpenSSH >= 9.5 client (clientloop.c, readconf.h): chaff on a ~interval grid (each interval fuzzed by +-10 %,
# plus a per-burst rate offset of up to +10 %) until 1024 + uniform(0, 2048) ms after the last keystroke.
OBFUSCATION_DEFAULT_INTERVAL_MS = 20
OBFUSCATION_FUZZ_PERCENT = 10
CHAFF_AFTER_LAST_KEY_MS = (1024, 1024 + 2048)

# Documentation addresses only (RFC 5737).
IP = {
    "T": "192.0.2.10",  # typist, on the typist--relay link
    "R_t": "192.0.2.1",  # relay/router, typist side
    "R_s": "198.51.100.1",  # relay/router, server side
    "S": "198.51.100.20",  # server, on the relay--server link
    "T_direct": "203.0.113.10",  # direct scenario: T and S share one L2 segment through both bridges
    "S_direct": "203.0.113.20",
}
FWD_PORT = 2222
# socat on R (portfwd). Towards T it writes at once (TCP_NODELAY on the listening socket, inherited by each accepted
# connection): with Nagle on that side, whenever the T--R round trip exceeds the time between two echoes (a far
# typist typing fast, or chaff every ~20 ms) socat held each echo until T acknowledged the one before (seen: echo
# at R's outer side 94 ms instead of 36, two echoes per segment at tr80-rs18 with fast typing), a delay no
# configured link explains. Towards S socat keeps its defaults (Nagle on): keys are >= 100 ms apart and S answers
# within the R--S round trip, so they leave one per segment; chaff every ~20 ms does not (see analyze_chaff).
SOCAT_LISTEN = f"TCP-LISTEN:{FWD_PORT},bind={IP['R_t']},reuseaddr,fork,nodelay"
SOCAT_CONNECT = f"TCP:{IP['S']}:22"


class LabError(Exception):
    pass


def log(msg):
    print(f"[lab {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def rfc3339_ns(t_ns):
    s, ns = divmod(t_ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(s)) + f".{ns:09d}Z"


def r3(x):
    return None if x is None else round(x, 3)
