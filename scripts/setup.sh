#!/usr/bin/env bash
# Install what echoloc needs on Debian 12 (build, tests, lab) and build it.
#   scripts/setup.sh           packages + release build
#   scripts/setup.sh --deps    packages only
# Needs root for apt-get (runs apt only when a package is missing).
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  build-essential pkg-config libpcap-dev        # build: the pcap crate links libpcap
  tcpdump tshark tcpreplay                      # tests: real captures, tshark as reference, live replay
  openssh-server openssh-client socat           # lab: real OpenSSH, port forwarding relay
  openssh-sftp-server dropbear-bin putty-tools  # lab/messy.py: sftp/scp, dropbear + dbclient, plink
  rsync vim tmux less util-linux                # lab/messy.py: what the scripted people run
  iproute2 iputils-ping ethtool procps          # lab: namespaces, veth, offloads
  mptcpize                                      # lab/mptcp.py: mptcpize run ssh/sshd (Multipath TCP)
  curl openssl                                  # tests: TLS and basic auth of /metrics
  bsdutils                                      # tests: script(1) gives replay a terminal (progress bar)
  prometheus                                    # tests: a real Prometheus server, promtool
  systemd yamllint jq python3 python3-venv      # deploy/check.sh
)

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
cargo build --release --locked
echo "setup: built $(pwd)/target/release/echoloc" >&2
