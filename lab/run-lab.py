#!/usr/bin/env python3
"""Ground-truth lab for echoloc: real OpenSSH sessions through delayed links, captured at known vantages.

Run as root on Debian 12 (Python 3.11 standard library only):

    python3 lab/run-lab.py                      # every scenario at every delay setting -> pcaps/lab/
    python3 lab/run-lab.py --quick              # every scenario at the first setting, shorter command
    python3 lab/run-lab.py --scenario jump,nested --setting tr30-rs7.5 --out /tmp/lab
    python3 lab/run-lab.py --openssh-prefix /opt/openssh-10 --scenario direct --setting tr30-rs7.5
                                                # OpenSSH 10.0 with keystroke-timing obfuscation (chaff)
                                                # -> pcaps/lab/obfuscated-direct-tr30-rs7.5/

For each scenario and delay setting the lab builds network namespaces (typist T, middle host R, server S and a
bridge namespace B), joins each link through a userspace delaying bridge (AF_PACKET; the kernel here has no
netem), starts Debian's sshd (and socat for the port-forward case), lets a scripted typist drive `ssh` through a
pty, captures with tcpdump at the server edge, the relay's outer side and the typist edge, and writes
`<out>/<scenario>-<setting>/{server-edge,relay-outer,typist-edge}.pcap` with `truth.json` beside them.
See lab/README.md for the meaning of every truth field.

Non-interactive sessions (pcaps/exec, see exec_main in lab_exec.py):
    run-lab.py exec [--out FILE] [--sessions N] [--delay-ms D] [--jitter-ms J] [--seed N]

Internal helper modes (started by the lab itself inside namespaces):
    run-lab.py _bridge --a IF --b IF --delay-ms D [--jitter-ms J] [--seed N] [--stats FILE]
    run-lab.py _ping DST [--count N] [--interval S]
"""

import argparse
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

# The lab's code is in the lab_*.py modules beside this file (see "Code" in lab/README.md); this file is the
# command line.
if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from lab_bridge import bridge_main, ping_main  # noqa: E402
from lab_common import DEFAULT_OUT, SW, LabError, log  # noqa: E402
from lab_exec import exec_main  # noqa: E402
from lab_scenario import EXTRA_SETTINGS, SCENARIOS, SETTINGS, TYPING, run_one  # noqa: E402
from lab_ssh import check_openssh_build, make_keys  # noqa: E402
from lab_truth import write_index  # noqa: E402

# messy.py, messy_*.py and mptcp.py load this file as a module (messy_common.runlab) and use these names from it
from lab_common import CIPHER, IP, SSHD, r3, rfc3339_ns  # noqa: E402
from lab_net import Lab, build_line, start_bridge, start_capture  # noqa: E402
from lab_ssh import CLIENT_CONFIG, SSHD_CONFIG, start_sshd  # noqa: E402
from lab_typist import read_pty  # noqa: E402

__all__ = ["CIPHER", "CLIENT_CONFIG", "IP", "SSHD", "SSHD_CONFIG", "Lab", "LabError", "build_line", "log", "make_keys",
           "r3", "read_pty", "rfc3339_ns", "start_bridge", "start_capture", "start_sshd"]


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "exec":
        return exec_main(sys.argv[2:])
    if len(sys.argv) > 1 and sys.argv[1] == "_bridge":
        return bridge_main(sys.argv[2:])
    if len(sys.argv) > 1 and sys.argv[1] == "_ping":
        return ping_main(sys.argv[2:])
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scenario", default="all", help=f"comma list of {', '.join(SCENARIOS)} or 'all'")
    p.add_argument("--setting", default="all",
                   help=f"comma list of {', '.join(list(SETTINGS) + list(EXTRA_SETTINGS))} or 'all' "
                        f"(= {', '.join(SETTINGS)})")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="output directory (default: pcaps/lab in the repo)")
    p.add_argument("--quick", action="store_true", help="first setting only (unless --setting) and a shorter command")
    p.add_argument("--seed", type=int, default=1, help="seed for typing gaps and jitter (default 1)")
    p.add_argument("--typing", choices=list(TYPING), default="normal",
                   help="typing profile: normal (0.12-0.35 s between keys) or fast (0.100-0.125 s, 8-10 keys/s; "
                        "sets named ...-fast); think pauses before each line are the same (0.45-0.9 s)")
    p.add_argument("--no-check", action="store_true", help="do not check the captures with tshark")
    p.add_argument("--retries", type=int, default=2,
                   help="run a set again when it fails or its check is not ok (default 2)")
    p.add_argument("--keep-work", action="store_true", help="keep the temporary work directory (configs, logs)")
    p.add_argument("--openssh-prefix", metavar="DIR",
                   help="use the OpenSSH installed under DIR (DIR/bin/ssh, DIR/sbin/sshd) for the client and every "
                        "sshd instead of Debian's, e.g. /opt/openssh-10 (keystroke-timing obfuscation)")
    p.add_argument("--obscure-keystroke-timing", default="yes", metavar="yes|no|interval:MS",
                   help="client ObscureKeystrokeTiming with --openssh-prefix (default yes = interval:20)")
    p.add_argument("--openssh-source", metavar="TEXT",
                   help="where the --openssh-prefix build came from, recorded as software.openssh_source")
    p.add_argument("--set-prefix", default=None,
                   help="prefix of the set directory names (default: none; with --openssh-prefix 'obfuscated-', "
                        "or 'openssh-prefix-' when obfuscation is off), so existing sets are never overwritten")
    p.add_argument("--idle-after-line", type=float, default=None, metavar="S",
                   help="extra idle seconds before each line after the first (default 0; 3.5 with obfuscation, "
                        "so each line's chaff burst ends before the next line)")
    args = p.parse_args()

    if os.geteuid() != 0:
        sys.exit("run-lab.py must run as root (network namespaces, raw sockets, tcpdump)")
    if args.openssh_prefix:
        pre = Path(args.openssh_prefix).resolve()
        SW["prefix"] = str(pre)
        SW["ssh"] = str(pre / "bin" / "ssh")
        SW["sshd"] = str(pre / "sbin" / "sshd")  # absolute: sshd re-executes itself and its helpers
        for f in (SW["ssh"], SW["sshd"]):
            if not os.access(f, os.X_OK):
                sys.exit(f"--openssh-prefix: {f} is missing or not executable")
        v = args.obscure_keystroke_timing
        if not (v in ("yes", "no") or (v.startswith("interval:") and v[9:].isdigit() and int(v[9:]) > 0)):
            sys.exit("--obscure-keystroke-timing: yes, no or interval:MS")
        SW["obscure"] = v
        SW["source"] = args.openssh_source
    elif args.obscure_keystroke_timing != "yes":
        sys.exit("--obscure-keystroke-timing needs --openssh-prefix (Debian's 9.2p1 has no obfuscation)")
    if args.set_prefix is None:
        args.set_prefix = "" if not SW["prefix"] else "openssh-prefix-" if SW["obscure"] == "no" else "obfuscated-"
    if args.idle_after_line is None:
        args.idle_after_line = 3.5 if SW["obscure"] not in (None, "no") else 0.0
    for tool in ("ip", "ethtool", "tcpdump", SW["ssh"], "ssh-keygen", SW["sshd"], "ss", "socat"):
        if not shutil.which(tool):
            sys.exit(f"missing tool: {tool}")
    if SW["prefix"]:
        check_openssh_build()
    obfuscating = SW["obscure"] not in (None, "no")
    if args.scenario == "all":
        scns = [s for s in SCENARIOS if not (obfuscating and s == "nested")]
    else:
        scns = args.scenario.split(",")
    for s in scns:
        if s not in SCENARIOS:
            sys.exit(f"unknown scenario {s!r}; choose from {SCENARIOS}")
        if s == "nested" and obfuscating:
            # (portfwd is fine: at S's edge, where socat re-segments the stream, chaff_expected is null with a
            # chaff_note; see resegmenting_vantage)
            sys.exit(f"{s} with keystroke-timing obfuscation is not supported: the ssh started in the relay's "
                     "shell chaffs and re-quantises keys too, and the chaff analysis does not model two clients")
    if args.setting == "all":
        sets = list(SETTINGS)[:1] if args.quick else list(SETTINGS)
    else:
        sets = args.setting.split(",")
        for s in sets:
            if s not in SETTINGS and s not in EXTRA_SETTINGS:
                sys.exit(f"unknown setting {s!r}; choose from {list(SETTINGS) + list(EXTRA_SETTINGS)}")
    outroot = Path(args.out).resolve()
    outroot.mkdir(parents=True, exist_ok=True)
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege-separation directory (Debian's)
    # The typist, ssh, sshd, socat and tcpdump inherit this: keystrokes and echoes keep their timing when the
    # machine is busy (a build at nice 0 delayed ssh by up to 160 ms). The bridges run SCHED_FIFO.
    os.setpriority(os.PRIO_PROCESS, 0, -15)

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    keydir = Path(tempfile.mkdtemp(prefix="echoloc-lab-keys-"))
    t0 = time.monotonic()
    failures = []
    sfx = TYPING[args.typing]["suffix"]
    try:
        make_keys(keydir)
        for scn in scns:
            for st in sets:
                for attempt in range(1 + args.retries):
                    try:
                        truth = run_one(scn, st, SETTINGS.get(st) or EXTRA_SETTINGS[st], args, keydir, outroot)
                    except LabError as e:
                        log(f"{args.set_prefix}{scn}-{st}{sfx}: FAILED (attempt {attempt + 1}): {e}")
                        problem = "failed"
                        continue
                    if args.no_check or truth["check"].get("all_ok", True):
                        problem = None
                        break
                    problem = "check not ok"
                    log(f"{args.set_prefix}{scn}-{st}{sfx}: check not ok (attempt {attempt + 1}): "
                        f"{'; '.join(truth['check']['failed'])}")
                if problem:
                    failures.append(f"{args.set_prefix}{scn}-{st}{sfx} ({problem})")
        write_index(outroot)
    finally:
        shutil.rmtree(keydir, ignore_errors=True)
    log(f"done in {time.monotonic() - t0:.1f} s; output in {outroot}"
        + (f"; FAILED: {', '.join(failures)}" if failures else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
