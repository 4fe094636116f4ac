"""The VPN lab's AnyConnect-style tunnel: ocserv on the gateway G, openconnect on the laptop L (CSTP over TLS on
TCP 443, data over DTLS on UDP 443). Used by lab_vpn_tunnels.up."""

import base64
import hashlib
import subprocess
import time

from lab_common import LabError

PORT = 443
USER, PASSWORD = "lab", "echoloc-lab-pw"

OCSERV_CONF = """auth = "plain[passwd={work}/ocpasswd]"
tcp-port = {port}
udp-port = {port}
listen-host = {gw}
run-as-user = nobody
run-as-group = nogroup
socket-file = {work}/ocserv.sock
pid-file = {work}/ocserv.pid
server-cert = {work}/server.crt
server-key = {work}/server.key
isolate-workers = false
max-clients = 4
max-same-clients = 2
keepalive = 300
dpd = 2
mobile-dpd = 2
switch-to-tcp-timeout = 25
try-mtu-discovery = false
tls-priorities = "NORMAL:%SERVER_PRECEDENCE"
auth-timeout = 60
idle-timeout = 1200
cookie-timeout = 300
deny-roaming = false
rekey-time = 172800
rekey-method = ssl
use-occtl = false
device = vpns
predictable-ips = true
ipv4-network = 203.0.113.0
ipv4-netmask = 255.255.255.128
route = 198.51.100.0/255.255.255.0
ping-leases = false
cisco-client-compat = true
dtls-legacy = true
"""

# openconnect's interface script: the address ocserv hands out, and the inside network into the tunnel
VPNC_SCRIPT = """#!/bin/sh
case "$reason" in
  connect)
    ip link set dev "$TUNDEV" up mtu "${INTERNAL_IP4_MTU:-1400}"
    ip addr add "$INTERNAL_IP4_ADDRESS/32" dev "$TUNDEV"
    ip route add 198.51.100.0/24 dev "$TUNDEV" src "$INTERNAL_IP4_ADDRESS"
    ;;
esac
exit 0
"""


def pin(cert):
    der = subprocess.run(["openssl", "x509", "-in", cert, "-pubkey", "-noout"], capture_output=True, check=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=der, capture_output=True,
                         check=True).stdout
    return "pin-sha256:" + base64.b64encode(hashlib.sha256(der).digest()).decode()


def version(prog):
    r = subprocess.run([prog, "--version"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return next((line.strip() for line in r.stdout.splitlines() if line.strip()), prog)


def up_anyconnect(lab, work, gw_ip, laptop_tun_ip, tunnel_cls):
    subprocess.run(["ocpasswd", "-c", work / "ocpasswd", USER], input=f"{PASSWORD}\n{PASSWORD}\n", text=True,
                   check=True, capture_output=True)
    (work / "ocserv.conf").write_text(OCSERV_CONF.format(work=work, port=PORT, gw=gw_ip))
    script = work / "vpnc-script"
    script.write_text(VPNC_SCRIPT)
    script.chmod(0o755)
    work.chmod(0o755)  # ocserv's workers drop to nobody
    lab.spawn("ocserv", "G", ["ocserv", "-f", "-d", "1", "-c", work / "ocserv.conf"],
              stdout=open(work / "ocserv.log", "wb"), stderr=subprocess.STDOUT)
    lab.wait_listen("G", PORT)
    log_f = work / "openconnect.log"
    p = lab.spawn("openconnect", "L", ["sh", "-c", f"echo {PASSWORD} | exec openconnect --passwd-on-stdin -u {USER} "
                                       f"--servercert {pin(work / 'server.crt')} --script {script} -i vpn0 "
                                       f"--non-inter https://{gw_ip}:{PORT}/"],
                  stdout=open(log_f, "wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if p.poll() is not None:
            raise LabError(f"openconnect ended: {log_f.read_text()[-500:]}")
        # "Established DTLS" comes before the script has set up vpn0; "Configured as ... DTLS connected" after
        if b"DTLS connected" in log_f.read_bytes():
            break
        time.sleep(0.2)
    else:
        raise LabError(f"openconnect: no DTLS: {log_f.read_text()[-500:]}")
    addr = lab.run("ip", "-4", "-o", "addr", "show", "dev", "vpn0", ns="L")
    info = {"software": [version("ocserv"), version("openconnect")],
            "transport": "CSTP over TLS on TCP 443 (control, fallback), data over DTLS on UDP 443",
            "gateway_options": "ocserv dpd = 2, mobile-dpd = 2", "laptop_tunnel_address": addr.split()[3],
            "gateway_initiated": "none of its own: openconnect sends a CSTP DPD request (30-byte TLS record on TCP "
                                 "443) every ~2 s, ocserv answers at once, and the laptop's TCP acknowledges that "
                                 "answer: the TCP round trip G -> laptop -> G"}
    return tunnel_cls("anyconnect", "vpn0", None, info)
