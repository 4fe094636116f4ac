"""The VPN lab's tunnels between the laptop L and the gateway G (vpn-lab.py): WireGuard (wireguard-go), OpenVPN 2.6
in TLS mode over UDP or TCP, strongSwan IKEv2 with userspace ESP in UDP 4500. Each `up_*` starts both ends inside
the run's namespaces and returns a Tunnel: its L-side interface and `poke()`, which makes the gateway start one of
the tunnel's own request/answer exchanges now (the sensor at G times the laptop's leg with them)."""

import os
import subprocess
import time

from lab_common import IP, LabError, log

# Documentation addresses: the outer link is IP["T"] (L) -- IP["R_t"] (G), the inside IP["R_s"] (G) -- IP["S"] (S).
TUN_NET = "203.0.113.0/25"
TUN_G, TUN_L = "203.0.113.1", "203.0.113.2"
LAN_L, LAN_T = "203.0.113.129", "203.0.113.130"  # relay scenario: T --d0-- L (203.0.113.128/25)
INSIDE_NET = "198.51.100.0/24"
OUT_L, OUT_G = IP["T"], IP["R_t"]
WG_PORT, OVPN_PORT = 51820, 1194


class Tunnel:
    def __init__(self, kind, l_if, poke=None, info=None):
        self.kind, self.l_if, self._poke, self.info = kind, l_if, poke, info or {}
        self.pokes = []  # [(start_ns, what)]

    def poke(self):
        if self._poke:
            t = time.time_ns()
            self.pokes.append({"t_ns": t, "what": self._poke()})


def _wait(cond, what, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.1)
    raise LabError(f"timed out waiting for {what}")


def route_inside(lab):
    """G forwards between tunnel and inside; S answers the tunnel's addresses through G."""
    lab.run("sysctl", "-q", "-w", "net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0", ns="G")
    lab.run("ip", "route", "add", TUN_NET, "via", IP["R_s"], ns="S")


# ------------------------------------------------------------------------------------------------------------------
# WireGuard (wireguard-go)
# ------------------------------------------------------------------------------------------------------------------


def up_wireguard(lab, work):
    names = {r: f"wg{lab.tag[2:]}{r.lower()}" for r in ("L", "G")}  # unique across namespaces (shared UAPI dir)
    keys = {}
    for r in ("L", "G"):
        priv = subprocess.run(["wg", "genkey"], capture_output=True, text=True, check=True).stdout.strip()
        pub = subprocess.run(["wg", "pubkey"], input=priv, capture_output=True, text=True, check=True).stdout.strip()
        (work / f"wg-{r}.key").write_text(priv + "\n")
        keys[r] = pub
    for r in ("L", "G"):
        lab.spawn(f"wireguard-go-{r}", r, ["env", "WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1", "wireguard-go",
                                            "-f", names[r]], stderr=open(work / f"wireguard-go-{r}.log", "wb"))
        _wait(lambda: os.path.exists(f"/var/run/wireguard/{names[r]}.sock"), f"wireguard-go {names[r]}")
    g_peer = ["peer", keys["L"], "allowed-ips", f"{TUN_L}/32", "endpoint", f"{OUT_L}:{WG_PORT}"]
    lab.run("wg", "set", names["G"], "private-key", work / "wg-G.key", "listen-port", WG_PORT, *g_peer, ns="G")
    lab.run("wg", "set", names["L"], "private-key", work / "wg-L.key", "listen-port", WG_PORT,
            "peer", keys["G"], "allowed-ips", f"{TUN_G}/32,{INSIDE_NET}", "endpoint", f"{OUT_G}:{WG_PORT}",
            "persistent-keepalive", 10, ns="L")
    for r, mine in (("L", TUN_L), ("G", TUN_G)):
        lab.run("ip", "addr", "add", f"{mine}/25", "dev", names[r], ns=r)
        lab.run("ip", "link", "set", names[r], "up", ns=r)
    lab.run("ip", "route", "add", INSIDE_NET, "dev", names["L"], ns="L")

    def poke():
        # forget the laptop's session on the gateway and send to it: the gateway initiates a handshake (148 bytes)
        # and the laptop answers (92)
        # (a persistent keepalive set on the new peer makes wireguard-go send one keepalive at once, which needs
        # a session first; no inner traffic is sent)
        lab.run("wg", "set", names["G"], "peer", keys["L"], "remove", ns="G")
        lab.run("wg", "set", names["G"], *g_peer, "persistent-keepalive", 25, ns="G")
        return "wg peer removed and re-added on G with persistent-keepalive 25 (its first keepalive at once)"

    info = {"software": subprocess.run(["wireguard-go", "--version"], capture_output=True, text=True).stdout.strip(),
            "interfaces": names, "port": WG_PORT, "persistent_keepalive_s": 10, "laptop_tunnel_ip": TUN_L,
            "gateway_initiated": "handshake after the peer is removed and re-added on G (poke)",
            "gateway_persistent_keepalive_s": "25 after the first poke"}
    return Tunnel("wireguard", names["L"], poke, info)


# ------------------------------------------------------------------------------------------------------------------
# OpenVPN 2.6, TLS mode, point to point
# ------------------------------------------------------------------------------------------------------------------


def make_pki(work):
    """A throw-away EC CA with a server and a client certificate."""
    def ossl(*a):
        subprocess.run(["openssl", *map(str, a)], check=True, capture_output=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    ossl("req", "-x509", *ec, "-keyout", work / "ca.key", "-out", work / "ca.crt", "-days", "2",
         "-subj", "/CN=echoloc-lab-ca")
    for name, eku in (("server", "serverAuth"), ("client", "clientAuth")):
        ossl("req", *ec, "-keyout", work / f"{name}.key", "-out", work / f"{name}.csr", "-subj", f"/CN={name}")
        ext = work / f"{name}.ext"
        ext.write_text(f"extendedKeyUsage={eku}\nkeyUsage=digitalSignature,keyAgreement\n")
        ossl("x509", "-req", "-in", work / f"{name}.csr", "-CA", work / "ca.crt", "-CAkey", work / "ca.key",
             "-CAcreateserial", "-out", work / f"{name}.crt", "-days", "2", "-extfile", ext)


def up_openvpn(lab, work, proto):
    make_pki(work)
    subprocess.run(["openvpn", "--genkey", "secret", work / "ta.key"], check=True, capture_output=True)
    # UDP: tls-auth (HMAC only: the control packets' ids and acks are in the clear, so requests pair with their
    # acks exactly); TCP: tls-crypt (control channel encrypted; pairs are TCP data -> the laptop's TCP ACK)
    wrap = ["--tls-auth", work / "ta.key"] if proto == "udp" else ["--tls-crypt", work / "ta.key"]
    common = ["--dev", "tun0", "--dev-type", "tun", "--disable-dco", "--ca", work / "ca.crt", "--dh", "none",
              "--auth", "SHA256", "--data-ciphers", "AES-256-GCM", "--verb", "3", "--mute-replay-warnings"]
    g = ["openvpn", *common, "--tls-server", "--cert", work / "server.crt", "--key", work / "server.key",
         "--local", OUT_G, "--lport", OVPN_PORT, "--ifconfig", TUN_G, TUN_L,
         # the gateway renegotiates every 6-8 s (SOFT_RESET and a TLS handshake: control packets the laptop
         # acknowledges) and sends a data-channel ping every 2 s when it has sent nothing else
         "--reneg-sec", "8", "6", "--ping", "2"]
    l_ = ["openvpn", *common, "--tls-client", "--cert", work / "client.crt", "--key", work / "client.key",
          "--remote", OUT_G, OVPN_PORT, "--ifconfig", TUN_L, TUN_G, "--route", "198.51.100.0", "255.255.255.0",
          "--remote-cert-tls", "server", "--nobind"]
    if proto == "udp":
        g += ["--proto", "udp4", *wrap, "0"]
        l_ += ["--proto", "udp4", *wrap, "1"]
    else:
        # TCP_NODELAY on both ends (--tcp-nodelay's effect): with Nagle, at 100 ms one way the laptop's inner ACK
        # waited for the outer ACK of its keystroke's segment and left with the next key (192 bytes, 400 ms)
        g += ["--proto", "tcp4-server", *wrap, "--socket-flags", "TCP_NODELAY"]
        l_ += ["--proto", "tcp4-client", *wrap, "--socket-flags", "TCP_NODELAY"]
    lab.spawn("openvpn-G", "G", g, stdout=open(work / "openvpn-G.log", "wb"), stderr=subprocess.STDOUT)
    time.sleep(0.5)
    lab.spawn("openvpn-L", "L", l_, stdout=open(work / "openvpn-L.log", "wb"), stderr=subprocess.STDOUT)
    _wait(lambda: b"Initialization Sequence Completed" in (work / "openvpn-L.log").read_bytes(),
          "OpenVPN on the laptop", timeout=30)
    info = {"software": subprocess.run(["openvpn", "--version"], capture_output=True, text=True).stdout.splitlines()[0],
            "proto": proto, "port": OVPN_PORT, "control_channel_wrap": "tls-auth" if proto == "udp" else "tls-crypt",
            "gateway_options": "--reneg-sec 8 6 --ping 2", "tcp_nodelay": proto == "tcp",
            "data_cipher": "AES-256-GCM", "dco": False,
            "gateway_initiated": "renegotiation every 6-8 s (SOFT_RESET, TLS handshake) acknowledged by the laptop"}
    return Tunnel(f"openvpn-{proto}", "tun0", None, info)


# ------------------------------------------------------------------------------------------------------------------
# strongSwan IKEv2, kernel-libipsec (userspace ESP), ESP in UDP 4500
# ------------------------------------------------------------------------------------------------------------------

STRONGSWAN_CONF = """charon {{
  load_modular = no
  load = random nonce openssl kdf pem pkcs1 x509 pubkey kernel-libipsec kernel-netlink socket-default vici
  install_routes = yes
  install_virtual_ip = no
  plugins {{
    vici {{
      socket = unix://{sock}
    }}
  }}
  filelog {{
    lab {{
      path = {log}
      time_format = %H:%M:%S
      default = 1
      ike = 2
      append = no
    }}
  }}
  syslog {{
    daemon {{
      default = -1
    }}
  }}
}}
"""

SWANCTL_CONF = """connections {{
  lab {{
    version = 2
    local_addrs = {me}
    remote_addrs = {peer}
    encap = yes
    proposals = aes128-sha256-ecp256
    dpd_delay = {dpd}
    rekey_time = {rekey}
    local {{
      auth = psk
      id = {my_id}
    }}
    remote {{
      auth = psk
      id = {peer_id}
    }}
    children {{
      lab {{
        local_ts = {lts}
        remote_ts = {rts}
        esp_proposals = aes128gcm16
        mode = tunnel
        rekey_time = {rekey}
      }}
    }}
  }}
}}
secrets {{
  ike-lab {{
    id-1 = gateway.example
    id-2 = laptop.example
    secret = "echoloc-lab-psk-not-secret"
  }}
}}
"""


def up_ipsec(lab, work):
    socks = {}
    for r, me, peer, lts, rts, dpd, rekey in (("G", OUT_G, OUT_L, INSIDE_NET, f"{TUN_L}/32", "2s", "0"),
                                               ("L", OUT_L, OUT_G, f"{TUN_L}/32", INSIDE_NET, "0", "0")):
        d = work / f"swanctl-{r}"
        d.mkdir()
        socks[r] = work / f"charon-{r}.vici"
        (work / f"strongswan-{r}.conf").write_text(STRONGSWAN_CONF.format(sock=socks[r], log=work / f"charon-{r}.log"))
        ids = ("gateway.example", "laptop.example")
        (d / "swanctl.conf").write_text(SWANCTL_CONF.format(
            me=me, peer=peer, lts=lts, rts=rts, dpd=dpd, rekey=rekey,
            my_id=ids[r == "L"], peer_id=ids[r == "G"]))
        # charon's pid file is fixed at /run/charon.pid: a private tmpfs /run per charon (mount namespace)
        conf = work / f"strongswan-{r}.conf"
        lab.spawn(f"charon-{r}", r, ["unshare", "-m", "sh", "-c", "mount -t tmpfs tmpfs /run && exec env "
                                     f"STRONGSWAN_CONF={conf} /usr/lib/ipsec/charon"],
                  stderr=open(work / f"charon-{r}.err", "wb"))
        _wait(lambda: socks[r].exists(), f"charon's vici socket in {r}")
        lab.run("swanctl", "--load-all", "--noprompt", "--file", d / "swanctl.conf", "--uri", f"unix://{socks[r]}",
                ns=r)
    lab.run("ip", "addr", "add", f"{TUN_L}/32", "dev", "lo", ns="L")
    out = lab.run("swanctl", "--initiate", "--child", "lab", "--uri", f"unix://{socks['L']}", "--timeout", "20", ns="L")
    if "successfully" not in out:
        raise LabError(f"IKE: {out[-400:]}")

    def poke():
        lab.run("swanctl", "--rekey", "--ike", "lab", "--uri", f"unix://{socks['G']}", ns="G")
        return "swanctl --rekey --ike lab on G (CREATE_CHILD_SA request from the gateway)"

    info = {"software": subprocess.run(["swanctl", "--version"], capture_output=True, text=True).stdout.strip(),
            "ike": "IKEv2 PSK, aes128-sha256-ecp256", "esp": "aes128gcm16, tunnel mode, kernel-libipsec (userspace)",
            "encap": "ESP in UDP 4500 (encap = yes)", "gateway_dpd_delay_s": 2, "laptop_dpd": "off",
            "laptop_tunnel_ip": TUN_L,
            "gateway_initiated": "DPD (INFORMATIONAL) after 2 s without inbound traffic; IKE rekey on G (poke)"}
    return Tunnel("ipsec", "ipsec0", poke, info)


def up(kind, lab, work):
    log(f"tunnel {kind}: starting")
    route_inside(lab)
    if kind == "wireguard":
        return up_wireguard(lab, work)
    if kind in ("openvpn-udp", "openvpn-tcp"):
        return up_openvpn(lab, work, kind.split("-")[1])
    if kind == "ipsec":
        return up_ipsec(lab, work)
    if kind == "anyconnect":
        from lab_vpn_anyconnect import up_anyconnect
        make_pki(work)
        return up_anyconnect(lab, work, OUT_G, TUN_L, Tunnel)
    raise LabError(f"unknown tunnel {kind}")
