#!/bin/bash
# Ground truth for non-interactive SSH: N runs of `ssh server 'echo ...' </dev/null`
# (no typing at all, stdin closed) over a jittery direct path, captured at the
# server's edge. Truth: every session has 0 keystrokes and no relay.
#
#   sudo lab/exec-jitter.sh [OUT.pcap]     (default pcaps/exec/jitter-server-edge.pcap)
#   env: N (sessions, 20), DELAY_MS (one-way, 10), JITTER_MS (+-, per frame, 8), SEED (1)
#
# T (192.0.2.1) --veth-- B (run-lab.py's delaying bridge) --veth-- S (192.0.2.2, sshd),
# tcpdump -s 96 on S's veth. Needs root, openssh-server, openssh-client, tcpdump, ethtool.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=$(realpath -m "${1:-$here/../pcaps/exec/jitter-server-edge.pcap}")
N=${N:-20} DELAY_MS=${DELAY_MS:-10} JITTER_MS=${JITTER_MS:-8} SEED=${SEED:-1}
ns="elx$$"
work=$(mktemp -d /tmp/echoloc-exec-XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    [ -f "$work/sshd.pid" ] && kill "$(cat "$work/sshd.pid")" 2>/dev/null || true
    for r in t b s; do ip netns del "$ns$r" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

ssh-keygen -q -t ed25519 -N "" -f "$work/hostkey"
ssh-keygen -q -t ed25519 -N "" -f "$work/userkey"
cp "$work/userkey.pub" "$work/authorized_keys"
mkdir -p /run/sshd
cat > "$work/sshd_config" <<EOF
ListenAddress 192.0.2.2
Port 22
HostKey $work/hostkey
PidFile $work/sshd.pid
AuthorizedKeysFile $work/authorized_keys
UsePAM no
StrictModes no
PermitRootLogin yes
PasswordAuthentication no
KbdInteractiveAuthentication no
EOF

for r in t b s; do ip netns add "$ns$r"; done
ip link add "${ns}t0" type veth peer name "${ns}bt"
ip link add "${ns}s0" type veth peer name "${ns}bs"
ip link set "${ns}t0" netns "${ns}t"; ip link set "${ns}bt" netns "${ns}b"
ip link set "${ns}bs" netns "${ns}b"; ip link set "${ns}s0" netns "${ns}s"
ip -n "${ns}t" addr add 192.0.2.1/24 dev "${ns}t0"
ip -n "${ns}s" addr add 192.0.2.2/24 dev "${ns}s0"
for x in "t ${ns}t0" "b ${ns}bt" "b ${ns}bs" "s ${ns}s0"; do
    set -- $x
    ip -n "$ns$1" link set "$2" up
    ip -n "$ns$1" link set lo up
    ip netns exec "$ns$1" ethtool -K "$2" tso off gso off gro off tx off rx off >/dev/null 2>&1 || true
done

ip netns exec "${ns}b" python3 "$here/run-lab.py" _bridge --a "${ns}bt" --b "${ns}bs" \
    --delay-ms "$DELAY_MS" --jitter-ms "$JITTER_MS" --seed "$SEED" > "$work/bridge.out" &
pids+=($!)
ip netns exec "${ns}s" /usr/sbin/sshd -f "$work/sshd_config" -E "$work/sshd.log"
for _ in $(seq 50); do grep -q ready "$work/bridge.out" && break; sleep 0.1; done
mkdir -p "$(dirname "$out")"
ip netns exec "${ns}s" tcpdump -i "${ns}s0" -s 96 -w "$out" tcp port 22 2>/dev/null &
pids+=($!)
sleep 1
for i in $(seq "$N"); do
    ip netns exec "${ns}t" ssh -F /dev/null -i "$work/userkey" -o StrictHostKeyChecking=no \
        -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR root@192.0.2.2 "echo exec-$i" </dev/null >/dev/null
done
sleep 1
echo "exec-jitter: $N sessions, one-way ${DELAY_MS} ms +-${JITTER_MS} ms -> $out"
