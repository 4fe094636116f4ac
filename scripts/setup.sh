#!/usr/bin/env bash
# Install what echoloc needs on Debian 12 (build, tests, lab) and build it.
#   scripts/setup.sh                    packages, Rust toolchain check, release build
#   scripts/setup.sh --deps             packages only
#   scripts/setup.sh --check-toolchain  only check that cargo is new enough
# Needs root for apt-get (runs apt only when a package is missing). The Rust
# toolchain is not installed here: Debian 12's own cargo/rustc (1.63) are too
# old, and a current one comes from rustup or Debian's cargo-web (below).
set -euo pipefail
cd "$(dirname "$0")/.."

# The oldest Rust that builds echoloc: rust-version in Cargo.toml (edition 2024
# needs 1.85, Cargo.lock version 4 1.78; the code uses let chains, 1.88).
min_rust() {
  sed -n 's/^rust-version *= *"\([0-9][0-9.]*\)".*/\1/p' Cargo.toml | head -n 1
}

# check_toolchain: succeed when `cargo --version` on PATH says at least
# min_rust; else say what was found and how to install a current toolchain.
check_toolchain() {
  local want out found="" want_major want_minor major minor
  want="$(min_rust)"
  [[ "$want" =~ ^([0-9]+)\.([0-9]+) ]] || { echo "setup: no rust-version in Cargo.toml" >&2; return 1; }
  want_major=${BASH_REMATCH[1]} want_minor=${BASH_REMATCH[2]}
  if ! command -v cargo >/dev/null 2>&1; then
    found="no cargo on PATH ($PATH)"
  elif ! out="$(cargo --version 2>&1)"; then
    found="\`cargo --version\` failed: $(printf '%s' "$out" | head -n 3)"
  elif [[ "$out" =~ ^cargo\ ([0-9]+)\.([0-9]+)\. ]]; then
    major=${BASH_REMATCH[1]} minor=${BASH_REMATCH[2]}
    if ((10#$major > want_major || (10#$major == want_major && 10#$minor >= want_minor))); then
      echo "setup: $out ($(command -v cargo)): ok, echoloc needs Rust >= $want" >&2
      return 0
    fi
    found="$out ($(command -v cargo))"
  else
    found="\`cargo --version\` printed: $(printf '%s' "$out" | head -n 1)"
  fi
  cat >&2 <<EOM
setup: echoloc needs Rust $want or newer (Cargo.toml rust-version; edition 2024), found: $found
Debian 12's own cargo and rustc are 1.63 and cannot build it. Install a current toolchain, then run
scripts/setup.sh again:
  - rustup, as the user who builds (https://rustup.rs):
      curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh
      . "\$HOME/.cargo/env"
  - or Debian 12's newer Rust for building browsers, from bookworm-security (replaces Debian's
    cargo and rustc packages; check that \`apt-cache policy cargo-web\` offers $want or newer):
      sudo apt-get install cargo-web
  - rustup installed but no toolchain chosen: rustup default stable
EOM
  return 1
}

if [ "${1:-}" = "--check-toolchain" ]; then
  check_toolchain
  exit
fi

PACKAGES=(
  build-essential pkg-config libpcap-dev        # build: the pcap crate links libpcap
  tcpdump tshark tcpreplay                      # tests: real captures, tshark as reference, live replay
  openssh-server openssh-client socat           # lab: real OpenSSH, port forwarding relay
  openssh-sftp-server dropbear-bin putty-tools  # lab/messy.py: sftp/scp, dropbear + dbclient, plink
  rsync vim tmux less util-linux                # lab/messy.py: what the scripted people run
  iproute2 iputils-ping ethtool procps          # lab: namespaces, veth, offloads
  mptcpize                                      # lab/mptcp.py: mptcpize run ssh/sshd (Multipath TCP)
  curl openssl                                  # tests: TLS and basic auth of /metrics
  apache2-utils                                 # tests/readme.rs: the README's htpasswd (bcrypt hash)
  bsdutils                                      # tests: script(1) gives replay a terminal (progress bar)
  prometheus                                    # tests: a real Prometheus server, promtool
  systemd yamllint jq python3 python3-venv      # deploy/check.sh
)
# Not installed here (so not in CI either): what only the labs that make committed captures need, as for the RDP
# lab (xrdp xorgxrdp freerdp2-x11 xvfb xterm xclip, and freerdp2-shadow-x11 winpr-utils for its NLA sets;
# lab/README.md). lab/vpn-lab.py needs
#   wireguard-go wireguard-tools openvpn strongswan-charon strongswan-swanctl libcharon-extra-plugins
#   libstrongswan-standard-plugins
# (apt-get install --no-install-recommends ...); tests use only its captures in pcaps/vpn/.

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "wireshark-common wireshark-common/install-setuid boolean false" | $SUDO debconf-set-selections
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The Debian prometheus package may start its own server on :9090; tests run their own.
if command -v systemctl >/dev/null && systemctl is-active --quiet prometheus 2>/dev/null; then
  systemctl stop prometheus || true
fi

# PyPI packages the tests compare with (tests/fields.rs: community_id against the
# reference implementation), pinned, in a venv of their own (deploy/check.sh keeps
# another for its tools): ${XDG_CACHE_HOME:-$HOME/.cache}/echoloc-ci/test-venv, or
# ECHOLOC_TEST_VENV.
TEST_PIP=("communityid==1.5.0")
TEST_VENV="${ECHOLOC_TEST_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/echoloc-ci/test-venv}"
stamp="$TEST_VENV/.echoloc-requirements"
if ! { [ -x "$TEST_VENV/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "${TEST_PIP[*]}" ]; }; then
  echo "setup: test venv $TEST_VENV (${TEST_PIP[*]})" >&2
  rm -rf "$TEST_VENV"
  mkdir -p "$(dirname "$TEST_VENV")"
  python3 -m venv "$TEST_VENV"
  "$TEST_VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-input "${TEST_PIP[@]}"
  printf '%s' "${TEST_PIP[*]}" >"$stamp"
fi

[ "${1:-}" = "--deps" ] && exit 0
check_toolchain
cargo build --release --locked
echo "setup: built $(pwd)/target/release/echoloc" >&2
