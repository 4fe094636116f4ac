"""OpenSSH in the lab: the sshd, shell and client config templates, keys (make_keys), starting an sshd
(start_sshd), the --openssh-prefix build check and the `software` part of truth.json."""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from lab_common import (CHAFF_AFTER_LAST_KEY_MS, CIPHER, OBFUSCATION_DEFAULT_INTERVAL_MS, OBFUSCATION_FUZZ_PERCENT,
                        SW, log)

SSHD_CONFIG = """\
Port 22
ListenAddress 0.0.0.0
HostKey {hostkey}
PidFile {pidfile}
AuthorizedKeysFile {authkeys}
{usepam}StrictModes no
PermitRootLogin yes
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PrintMotd no
PrintLastLog no
UseDNS no
AllowTcpForwarding yes
X11Forwarding no
AllowAgentForwarding no
Ciphers {cipher}
{force_command}LogLevel INFO
"""

SHELL_RC = """\
# lab shell for {host}: fixed prompt, no history file, helpers used by the typist
PS1='{prompt}'
unset HISTFILE PROMPT_COMMAND
# da: ask the terminal for its primary Device Attributes three times, as vim asks three questions at start (a
# sensor needs two replies that agree, and the first question can leave in one segment with Enter's echo),
# reading each answer silently before the next question
da() {{ for _q in 1 2 3; do printf '\\033[c'; IFS= read -r -s -t 2 -d c _reply; done; }}
ssh() {{ command {ssh} -F {client_config} "$@"; }}
"""

CLIENT_CONFIG = """\
Host relay
  HostName {relay}
Host server
  HostName {server}
Host *
  User root
  IdentityFile {key}
  IdentitiesOnly yes
  StrictHostKeyChecking no
  UserKnownHostsFile /dev/null
  GlobalKnownHostsFile /dev/null
  CheckHostIP no
  UpdateHostKeys no
  LogLevel ERROR
  Ciphers {cipher}
  ControlMaster no
  ControlPath none
  ForwardAgent no
  ForwardX11 no
{extra}"""


def start_sshd(lab, role, host, keydir, work, force_command=""):
    """sshd for `host` ("server" or "relay", its host key in keydir) in namespace `role`."""
    cfg = work / f"sshd_config-{host}"
    cfg.write_text(SSHD_CONFIG.format(hostkey=keydir / f"host-{host}", pidfile=work / f"sshd-{host}.pid",
                                      authkeys=keydir / "authorized_keys", cipher=CIPHER, force_command=force_command,
                                      usepam="UsePAM no\n" if SW["use_pam_line"] else ""))
    # config test first (also checks the privilege-separation user and directory): a clear error here
    # beats "nothing listens on port 22" later
    lab.run(SW["sshd"], "-t", "-f", cfg, ns=role)
    lab.spawn(f"sshd-{host}", role, [SW["sshd"], "-D", "-e", "-f", cfg], stderr=open(work / f"sshd-{host}.log", "wb"))


def make_keys(keydir):
    """The typist's key (authorized everywhere) and the server's and relay's host keys."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "echoloc-lab", "-f",
                    keydir / "id_ed25519"], check=True)
    for host in ("server", "relay"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"echoloc-lab-{host}", "-f",
                        keydir / f"host-{host}"], check=True)
    shutil.copy(keydir / "id_ed25519.pub", keydir / "authorized_keys")


def check_openssh_build():
    """The --openssh-prefix build must find its helpers and its privilege-separation setup before any run."""
    probe = Path(tempfile.mkdtemp(prefix="echoloc-lab-sshd-probe-"))
    try:
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", probe / "hostkey"], check=True)
        cfg = probe / "sshd_config"
        cfg.write_text(f"HostKey {probe / 'hostkey'}\nPidFile {probe / 'pid'}\n")
        r = subprocess.run([SW["sshd"], "-T", "-f", cfg], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if r.returncode != 0:
            sys.exit(f"{SW['sshd']} -T failed: {r.stdout.strip()[-400:]}")
        dump = dict(line.split(" ", 1) for line in r.stdout.splitlines() if " " in line)
        SW["use_pam_line"] = "usepam" in dump  # a build --without-pam calls "UsePAM no" unsupported
        for opt in ("sshdsessionpath", "sshdauthpath"):  # OpenSSH >= 9.8 (10.0) splits sshd into helpers
            if opt in dump and not os.access(dump[opt], os.X_OK):
                sys.exit(f"{SW['sshd']}: {opt} {dump[opt]} is missing (was `make install` run for this prefix?)")
        # sshd -t checks the privilege-separation user and chroot directory (configure's default /var/empty:
        # must exist, root-owned, not group/world writable); report its own message if that fails
        r = subprocess.run([SW["sshd"], "-t", "-f", cfg], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if r.returncode != 0:
            sys.exit(f"{SW['sshd']} -t failed: {r.stdout.strip()[-400:]} (privilege separation: the build's "
                     "chroot directory, /var/empty by default, must exist, owned by root, mode 755)")
        log(f"OpenSSH under {SW['prefix']}: "
            + subprocess.run([SW["ssh"], "-V"], stderr=subprocess.PIPE, text=True).stderr.strip()
            + f"; sshd helpers {dump.get('sshdsessionpath', '-')}, {dump.get('sshdauthpath', '-')}")
    finally:
        shutil.rmtree(probe, ignore_errors=True)


def software_truth():
    sw = {
        "ssh": subprocess.run([SW["ssh"], "-V"], stderr=subprocess.PIPE, text=True).stderr.strip(),
        "kernel": os.uname().release,
        "cipher": CIPHER,
        "keystroke_timing_obfuscation": bool(SW["obscure"]) and SW["obscure"] != "no",
    }
    if SW["prefix"]:
        sw["sshd"] = subprocess.run([SW["sshd"], "-V"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    text=True).stdout.strip()
        sw["openssh_prefix"] = SW["prefix"]
        if SW["source"]:
            sw["openssh_source"] = SW["source"]
        sw["obscure_keystroke_timing"] = {
            "client_option": f"ObscureKeystrokeTiming {SW['obscure']}",
            "interval_ms": obscure_interval_ms(),
            "interval_fuzz_percent": OBFUSCATION_FUZZ_PERCENT,
            "chaff_after_last_keystroke_ms": list(CHAFF_AFTER_LAST_KEY_MS),
            "chaff_message": "SSH2_MSG_PING \"PING!\" (client), answered by SSH2_MSG_PONG (sshd); "
                             "same padded size as a one-byte keystroke",
        }
    return sw


def obscure_interval_ms():
    v = SW["obscure"]
    if not v or v == "no":
        return None
    if v == "yes":
        return OBFUSCATION_DEFAULT_INTERVAL_MS
    return int(v.split(":", 1)[1])
