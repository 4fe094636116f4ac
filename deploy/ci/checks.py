#!/usr/bin/env python3
"""Static checks for deploy/ that the stock tools do not cover.

Run by deploy/check.sh inside its venv (needs PyYAML and dockerfile-parse).
Each subcommand prints what it found wrong and exits 1, or prints a one-line
result and exits 0:

  dockerfile DOCKERFILE DOCKERIGNORE   image structure (stages, user, caps)
  kubernetes DAEMONSET SERVICEMONITOR  cross-references between the manifests
  toml FILE...                         TOML files parse
  systemd UNIT                         required hardening directives are set
  configmap-toml DAEMONSET OUT         write the ConfigMap's echoloc.toml to OUT
  exposition CONTRACT METRICS_FILE     a real /metrics scrape uses only contract
                                       names, labels and label values
  alert-tests ALERTS TEST...           every alert has a firing and a silent test
  rules CONTRACT RECORDING ALERTS...   metric/label names used by rule files
  grafana CONTRACT DASHBOARD OUT_RULES RECORDING...
                                       dashboard structure and names; writes every
                                       PromQL expression as a recording rule to
                                       OUT_RULES for `promtool check rules`
"""

from __future__ import annotations

import json
import re
import sys
import tomllib
from pathlib import Path

# Labels Prometheus attaches to every scraped series (target labels and the ones
# deploy/ relabels in), allowed on every metric.
TARGET_LABELS = {"job", "instance", "node", "site"}
PROMQL_KEYWORDS = {
    "and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
    "group_left", "group_right", "inf", "nan", "atan2", "start", "end",
}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


class Failures:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, where: str, msg: str) -> None:
        self.items.append(f"{where}: {msg}")

    def check(self, cond: bool, where: str, msg: str) -> None:
        if not cond:
            self.add(where, msg)

    def finish(self, ok_msg: str) -> int:
        if self.items:
            for item in self.items:
                print(f"  {item}")
            return 1
        print(ok_msg)
        return 0


# --------------------------------------------------------------------------- PromQL names

class Contract:
    """Metric names, types and labels from deploy/ci/metrics-contract.txt."""

    def __init__(self, path: str) -> None:
        self.metrics: dict[str, tuple[str, dict[str, set[str] | None]]] = {}
        for raw in Path(path).read_text().splitlines():
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            name, mtype, *labels = line.split()
            spec: dict[str, set[str] | None] = {}
            for lab in labels:
                key, _, values = lab.partition("=")
                spec[key] = set(values.split("|")) if values else None
            self.metrics[name] = (mtype, spec)
        self.recorded: set[str] = set()

    def add_recorded(self, rule_files: list[str]) -> None:
        import yaml

        for f in rule_files:
            for group in (yaml.safe_load(Path(f).read_text()) or {}).get("groups", []):
                for rule in group.get("rules", []):
                    if "record" in rule:
                        self.recorded.add(rule["record"])

    def labels_of(self, series: str) -> dict[str, set[str] | None] | None:
        """Allowed labels of a series name (with value sets), None if unknown."""
        if series in self.metrics:
            return dict(self.metrics[series][1])
        for suffix in HISTOGRAM_SUFFIXES:
            base = series[: -len(suffix)]
            if series.endswith(suffix) and self.metrics.get(base, ("",))[0] == "histogram":
                spec = dict(self.metrics[base][1])
                if suffix == "_bucket":
                    spec["le"] = None
                return spec
        if series in self.recorded:
            # level:metric:operations -- the level part names the labels kept.
            level = series.split(":", 1)[0]
            return {lab: None for lab in level.split("_") if lab}
        return None


STRING_RE = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
SELECTOR_RE = re.compile(r"(?<![\w:.])([A-Za-z_:][\w:]*)\s*\{([^}]*)\}")
MATCHER_RE = re.compile(
    r'\s*([A-Za-z_]\w*)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\')\s*,?'
)
GROUPING_RE = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
IDENT_RE = re.compile(r"(?<![\w:.$])([A-Za-z_:][\w:]*)(?![\w:])(?!\s*\()")


def promql_names(expr: str) -> tuple[set[str], set[str]]:
    """(series names, grouping labels) an expression refers to."""
    no_strings = STRING_RE.sub('""', expr)
    bare = re.sub(r"\{[^}]*\}", " ", no_strings)
    bare = re.sub(r"\[[^\]]*\]", " ", bare)
    grouping: set[str] = set()
    for _, labels in GROUPING_RE.findall(bare):
        grouping.update(lab.strip() for lab in labels.split(",") if lab.strip())
    bare = GROUPING_RE.sub(" ", bare)
    names = {m for m in IDENT_RE.findall(bare) if m.lower() not in PROMQL_KEYWORDS}
    return names, grouping


def check_expr(expr: str, contract: Contract, where: str, fails: Failures,
               legend: str | None = None) -> None:
    names, grouping = promql_names(expr)
    if not names:
        fails.add(where, f"no metric name found in {expr!r}")
    known_labels = set(TARGET_LABELS)
    for name in sorted(names):
        spec = contract.labels_of(name)
        if spec is None:
            fails.add(where, f"metric {name!r} is not in the contract nor a recording rule")
            continue
        known_labels.update(spec)
    for name, body in SELECTOR_RE.findall(expr):
        spec = contract.labels_of(name)
        if spec is None:
            continue
        pos = 0
        while pos < len(body):
            m = MATCHER_RE.match(body, pos)
            if not m:
                if body[pos:].strip():
                    fails.add(where, f"cannot read label matchers {body[pos:]!r} of {name}")
                break
            pos = m.end()
            label, op, value = m.group(1), m.group(2), m.group(3)[1:-1]
            if label == "__name__":
                fails.add(where, f"{name}: __name__ matchers defeat the name check")
                continue
            if label not in spec and label not in TARGET_LABELS:
                fails.add(where, f"{name} has no label {label!r} (contract: {sorted(spec)})")
            elif op == "=" and spec.get(label) and value not in spec[label]:
                fails.add(where, f"{name}{{{label}={value!r}}}: value not in {sorted(spec[label])}")
    for label in sorted(grouping - known_labels - {"le"}):
        fails.add(where, f"grouping label {label!r} is on none of {sorted(names)}")
    if legend:
        for label in re.findall(r"\{\{\s*([A-Za-z_]\w*)\s*\}\}", legend):
            if label not in known_labels:
                fails.add(where, f"legend uses {{{{{label}}}}}, a label none of {sorted(names)} has")


def cmd_rules(contract_path: str, recording: str, *rule_files: str) -> int:
    import yaml

    contract = Contract(contract_path)
    contract.add_recorded([recording])
    fails = Failures()
    count = 0
    for f in (recording, *rule_files):
        for group in (yaml.safe_load(Path(f).read_text()) or {}).get("groups", []):
            for rule in group.get("rules", []):
                name = rule.get("alert") or rule.get("record")
                check_expr(str(rule["expr"]), contract, f"{f}:{name}", fails)
                count += 1
    return fails.finish(f"{count} rule expressions use only contract metrics and labels")


# --------------------------------------------------------------------------- Grafana

def substitute_variables(expr: str, variables: list[dict]) -> str:
    out = expr
    builtins = {
        "__rate_interval": "5m", "__interval_ms": "300000", "__interval": "5m",
        "__range_ms": "300000", "__range_s": "300", "__range": "5m",
    }
    for name in sorted(builtins, key=len, reverse=True):
        val = builtins[name]
        out = out.replace("${" + name + "}", val).replace("$" + name, val)
    for var in sorted(variables, key=lambda v: len(v["name"]), reverse=True):
        name = var["name"]
        cur = var.get("current", {}).get("value")
        value = str(cur) if isinstance(cur, str) and re.fullmatch(r"\d+(\.\d+)?", cur) else ".*"
        out = re.sub(r"\$\{" + re.escape(name) + r"(:[^}]*)?\}", value, out)
        out = re.sub(r"\[\[" + re.escape(name) + r"\]\]", value, out)
        out = re.sub(r"\$" + re.escape(name) + r"\b", value, out)
    return out


def cmd_grafana(contract_path: str, dashboard: str, out_rules: str, *recording: str) -> int:
    import yaml

    contract = Contract(contract_path)
    contract.add_recorded(list(recording))
    fails = Failures()
    d = json.loads(Path(dashboard).read_text())
    fails.check(isinstance(d.get("schemaVersion"), int) and d["schemaVersion"] >= 36,
                dashboard, f"schemaVersion {d.get('schemaVersion')} < 36")
    fails.check(bool(d.get("uid")) and bool(d.get("title")), dashboard, "uid and title are required")
    variables = d.get("templating", {}).get("list", [])
    ds_vars = [v for v in variables if v.get("type") == "datasource" and v.get("query") == "prometheus"]
    fails.check(any(v["name"] == "DS_PROMETHEUS" for v in ds_vars), dashboard,
                "needs a templating variable DS_PROMETHEUS of type datasource (prometheus)")
    fails.check(len({v["name"] for v in variables}) == len(variables), dashboard,
                "duplicate templating variable names")

    exprs: list[tuple[str, str]] = []  # (record name, expr)
    for var in variables:
        if var.get("type") != "query":
            continue
        q = var.get("query")
        q = q.get("query") if isinstance(q, dict) else q
        m = re.fullmatch(r"\s*label_values\((.*),\s*([A-Za-z_]\w*)\s*\)\s*", q or "")
        if not m:
            fails.add(f"variable {var['name']}", f"expected label_values(SELECTOR, LABEL), got {q!r}")
            continue
        selector = substitute_variables(m.group(1), variables)
        check_expr(selector, contract, f"variable {var['name']}", fails, "{{" + m.group(2) + "}}")
        exprs.append((f"grafana_check:variable_{var['name']}", selector))

    panels: list[dict] = []
    for p in d.get("panels", []):
        panels.append(p)
        panels.extend(p.get("panels", []))
    ids = [p.get("id") for p in panels]
    fails.check(len(ids) == len(set(ids)) and None not in ids, dashboard, f"panel ids must be unique: {ids}")
    boxes = []
    used: set[str] = set()
    kinds: set[str] = set()
    for p in panels:
        where = f"panel {p.get('id')} {p.get('title')!r}"
        g = p.get("gridPos") or {}
        fails.check(all(k in g for k in ("x", "y", "w", "h")), where, "gridPos needs x, y, w, h")
        if all(k in g for k in ("x", "y", "w", "h")):
            fails.check(g["x"] + g["w"] <= 24, where, "panel wider than the 24-column grid")
            for other_where, o in boxes:
                if (g["x"] < o["x"] + o["w"] and o["x"] < g["x"] + g["w"]
                        and g["y"] < o["y"] + o["h"] and o["y"] < g["y"] + g["h"]):
                    fails.add(where, f"overlaps {other_where}")
            boxes.append((where, g))
        if p.get("type") == "row":
            continue
        kinds.add(p.get("type"))
        fails.check(bool(p.get("title")), where, "panel needs a title")
        fails.check((p.get("datasource") or {}).get("uid") == "${DS_PROMETHEUS}", where,
                    "panel datasource uid must be ${DS_PROMETHEUS}")
        targets = p.get("targets") or []
        fails.check(bool(targets), where, "panel has no targets")
        refs = [t.get("refId") for t in targets]
        fails.check(len(refs) == len(set(refs)), where, f"duplicate refIds {refs}")
        for t in targets:
            twhere = f"{where} target {t.get('refId')}"
            expr = (t.get("expr") or "").strip()
            fails.check(bool(expr), twhere, "target has no expr")
            fails.check((t.get("datasource") or {}).get("uid") == "${DS_PROMETHEUS}", twhere,
                        "target datasource uid must be ${DS_PROMETHEUS}")
            if not expr:
                continue
            concrete = substitute_variables(expr, variables)
            if "$" in concrete:
                fails.add(twhere, f"unknown template variable left in {concrete!r}")
            check_expr(concrete, contract, twhere, fails, t.get("legendFormat"))
            used.update(promql_names(concrete)[0])
            exprs.append((f"grafana_check:panel{p.get('id')}_{t.get('refId')}", concrete))

    # What the dashboard is for: each of these must be shown somewhere.
    required = {
        "echoloc_session_typist_rtt_seconds", "echoloc_session_hidden_latency_seconds",
        "echoloc_session_relay_suspected", "echoloc_echo_delay_seconds_bucket",
        "echoloc_capture_dropped_packets_total", "echoloc_decode_errors_total",
        "echoloc_packets_total", "echoloc_exported_sessions", "echoloc_exported_sessions_limit",
    }
    for name in sorted(required - used):
        fails.add(dashboard, f"no panel shows {name}")
    if not any(n.startswith("instance_proto_leg:echoloc_rtt_seconds:") for n in used):
        fails.add(dashboard, "no panel shows transport RTT by leg (recording rules)")
    if not any(n.startswith("instance_proto:echoloc_echo_delay_seconds:p") for n in used):
        fails.add(dashboard, "no panel shows echo delay quantiles")
    fails.check("heatmap" in kinds, dashboard, "no heatmap panel (echo delay histogram)")
    fails.check(any(e.lstrip().startswith("topk(") for _, e in exprs), dashboard,
                "no topk panel (top sessions by typist RTT)")

    rules = {"groups": [{"name": "grafana-dashboard-expressions",
                         "rules": [{"record": r, "expr": e} for r, e in exprs]}]}
    Path(out_rules).write_text(yaml.safe_dump(rules, sort_keys=False, width=1000))
    return fails.finish(f"{len(panels)} panels, {len(exprs)} expressions: structure and names ok")


# --------------------------------------------------------------------------- Dockerfile

def cmd_dockerfile(path: str, ignore_path: str) -> int:
    from dockerfile_parse import DockerfileParser

    fails = Failures()
    df = DockerfileParser(path)
    stages: list[list[dict]] = []
    for ins in df.structure:
        if ins["instruction"] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(ins)
    images = df.parent_images
    fails.check(len(stages) >= 2, path, "must be a multi-stage build (builder + runtime)")
    fails.check(bool(images) and re.fullmatch(r"rust:[\w.-]*bookworm", images[0] or "") is not None,
                path, f"builder must be rust:*-bookworm, is {images[:1]}")
    fails.check(bool(images) and images[-1] == "debian:bookworm-slim", path,
                f"runtime must be debian:bookworm-slim, is {images[-1:]}")
    for ins in df.structure:
        if ins["instruction"] == "ADD" and re.search(r"(https?|ftp)://|git@", ins["value"]):
            fails.add(f"{path}:{ins['startline'] + 1}", "ADD of a URL; download in a RUN with checksum instead")
        if ins["instruction"] == "FROM" and ":latest" in ins["value"]:
            fails.add(f"{path}:{ins['startline'] + 1}", "FROM with :latest")
    if len(stages) >= 2:
        builder = " ".join(i["value"] for i in stages[0] if i["instruction"] == "RUN")
        runtime = stages[-1]
        run_text = " ".join(i["value"] for i in runtime if i["instruction"] == "RUN")
        fails.check("libpcap-dev" in builder, path, "builder must install libpcap-dev")
        fails.check(re.search(r"\blibpcap0\.8\b", run_text) is not None, path, "runtime must install libpcap0.8")
        dev = re.findall(r"\b[\w.+-]+-dev\b", run_text)
        fails.check(not dev, path, f"runtime installs build-only packages {dev}")
        fails.check(re.search(r"setcap\s+cap_net_raw[+=]ep\s+\S*echoloc", run_text) is not None, path,
                    "runtime must give the binary cap_net_raw+ep (setcap)")
        fails.check(any(i["instruction"] == "COPY" and "--from=" in i["value"] for i in runtime), path,
                    "runtime must COPY --from the builder stage")
        users = [i["value"].strip() for i in runtime if i["instruction"] == "USER"]
        user = users[-1] if users else ""
        uid = user.split(":")[0]
        fails.check(bool(user), path, "runtime stage sets no USER (would run as root)")
        if user:
            fails.check(uid not in ("0", "root"), path, f"USER {user} is root")
            fails.check(uid.isdigit(), path, f"USER {user}: use a numeric uid so runAsNonRoot can verify it")
        entry = [i["value"] for i in runtime if i["instruction"] == "ENTRYPOINT"]
        fails.check(bool(entry) and entry[-1].lstrip().startswith("["), path, "ENTRYPOINT must use exec form")
        fails.check(bool(entry) and "/usr/local/bin/echoloc" in entry[-1], path,
                    "ENTRYPOINT must run /usr/local/bin/echoloc")
    ignored = {ln.strip() for ln in Path(ignore_path).read_text().splitlines()
               if ln.strip() and not ln.startswith("#")}
    for must in (".git", "target"):
        fails.check(must in ignored, ignore_path, f"must ignore {must}")
    return fails.finish(f"{len(stages)} stages, runtime {images[-1] if images else '?'}, "
                        f"user {user if len(stages) >= 2 else '?'}")


# --------------------------------------------------------------------------- Kubernetes

def subset(small: dict, big: dict) -> bool:
    return all(big.get(k) == v for k, v in (small or {}).items())


def cmd_kubernetes(daemonset_path: str, servicemonitor_path: str) -> int:
    import yaml

    fails = Failures()
    docs: dict[str, list[dict]] = {}
    for f in (daemonset_path, servicemonitor_path):
        for doc in yaml.safe_load_all(Path(f).read_text()):
            if doc:
                docs.setdefault(doc.get("kind"), []).append(doc)

    def one(kind: str) -> dict:
        found = docs.get(kind, [])
        fails.check(len(found) == 1, kind, f"expected exactly one {kind}, found {len(found)}")
        return found[0] if found else {}

    ns, sa, cm, ds = one("Namespace"), one("ServiceAccount"), one("ConfigMap"), one("DaemonSet")
    svc, sm = one("Service"), one("ServiceMonitor")
    nsname = ns.get("metadata", {}).get("name")
    for kind, items in docs.items():
        for obj in items:
            if kind != "Namespace":
                fails.check(obj.get("metadata", {}).get("namespace") == nsname, kind,
                            f"must be in namespace {nsname}")
    fails.check(ns.get("metadata", {}).get("labels", {}).get("pod-security.kubernetes.io/enforce")
                == "privileged", "Namespace", "hostNetwork pods need pod-security enforce=privileged")

    spec = ds.get("spec", {})
    tmpl = spec.get("template", {})
    pod = tmpl.get("spec", {})
    labels = tmpl.get("metadata", {}).get("labels", {})
    ann = tmpl.get("metadata", {}).get("annotations", {})
    fails.check(subset(spec.get("selector", {}).get("matchLabels"), labels) and
                bool(spec.get("selector", {}).get("matchLabels")),
                "DaemonSet", "selector.matchLabels must match the pod template labels")
    fails.check(pod.get("hostNetwork") is True, "DaemonSet", "hostNetwork must be true")
    fails.check(pod.get("dnsPolicy") == "ClusterFirstWithHostNet", "DaemonSet",
                "hostNetwork pods need dnsPolicy ClusterFirstWithHostNet")
    fails.check(pod.get("serviceAccountName") == sa.get("metadata", {}).get("name"), "DaemonSet",
                "serviceAccountName must name the ServiceAccount")
    fails.check(pod.get("automountServiceAccountToken") is False, "DaemonSet",
                "automountServiceAccountToken must be false (no API access needed)")
    psc = pod.get("securityContext", {})
    containers = pod.get("containers", [])
    fails.check(len(containers) >= 1, "DaemonSet", "no containers")
    metrics_port = None
    for c in containers:
        where = f"DaemonSet container {c.get('name')}"
        sc = c.get("securityContext", {})
        caps = sc.get("capabilities", {})
        fails.check("ALL" in (caps.get("drop") or []), where, "capabilities.drop must contain ALL")
        fails.check((caps.get("add") or []) == ["NET_RAW"], where,
                    f"capabilities.add must be exactly [NET_RAW], is {caps.get('add')}")
        fails.check(sc.get("privileged") in (None, False), where, "must not be privileged")
        fails.check(sc.get("readOnlyRootFilesystem") is True, where, "readOnlyRootFilesystem must be true")
        fails.check(sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True, where, "runAsNonRoot must be true")
        uid = sc.get("runAsUser", psc.get("runAsUser"))
        fails.check(isinstance(uid, int) and uid > 0, where, f"runAsUser must be a non-zero uid, is {uid}")
        res = c.get("resources", {})
        for key in ("requests.cpu", "requests.memory", "limits.memory"):
            a, b = key.split(".")
            fails.check(bool(res.get(a, {}).get(b)), where, f"resources.{key} must be set")
        ports = {p.get("name"): p.get("containerPort") for p in c.get("ports", [])}
        if "metrics" in ports:
            metrics_port = ports["metrics"]
        mounts = {m.get("name"): m for m in c.get("volumeMounts", [])}
        args = c.get("args", [])
        fails.check(args[:1] == ["live"], where, f"args must start with `live`, are {args[:1]}")
        if "--config" in args:
            cfg = args[args.index("--config") + 1]
            vols = {v.get("name"): v for v in pod.get("volumes", [])}
            hit = [(n, m) for n, m in mounts.items() if cfg.startswith(m.get("mountPath", "") + "/")]
            fails.check(bool(hit), where, f"--config {cfg} is not under any volumeMount")
            for name, m in hit:
                fails.check(m.get("readOnly") is True, where, f"volumeMount {name} must be readOnly")
                cmname = vols.get(name, {}).get("configMap", {}).get("name")
                fails.check(cmname == cm.get("metadata", {}).get("name"), where,
                            f"volume {name} must come from ConfigMap {cm.get('metadata', {}).get('name')}")
                key = cfg[len(m["mountPath"]) + 1:]
                data = cm.get("data", {})
                fails.check(key in data, "ConfigMap", f"has no key {key!r} for --config {cfg}")
                if key in data:
                    try:
                        tomllib.loads(data[key])
                    except tomllib.TOMLDecodeError as e:
                        fails.add("ConfigMap", f"{key} is not valid TOML: {e}")
        else:
            fails.add(where, "args must pass --config")
    fails.check(metrics_port is not None, "DaemonSet", "no container port named metrics")
    fails.check(ann.get("prometheus.io/scrape") == "true", "DaemonSet", 'annotation prometheus.io/scrape: "true"')
    fails.check(ann.get("prometheus.io/port") == str(metrics_port), "DaemonSet",
                f"annotation prometheus.io/port must be {metrics_port}")
    fails.check(ann.get("prometheus.io/path") == "/metrics", "DaemonSet", "annotation prometheus.io/path: /metrics")

    sspec = svc.get("spec", {})
    fails.check(bool(sspec.get("selector")) and subset(sspec.get("selector"), labels), "Service",
                "selector must match the DaemonSet pod labels")
    sports = {p.get("name"): p for p in sspec.get("ports", [])}
    fails.check("metrics" in sports, "Service", "needs a port named metrics")
    if "metrics" in sports:
        tp = sports["metrics"].get("targetPort")
        fails.check(tp == "metrics" or tp == metrics_port, "Service", f"targetPort {tp} is not the metrics port")
    fails.check(sm.get("apiVersion") == "monitoring.coreos.com/v1", "ServiceMonitor",
                "apiVersion must be monitoring.coreos.com/v1")
    smspec = sm.get("spec", {})
    fails.check(bool(smspec.get("selector", {}).get("matchLabels")) and
                subset(smspec.get("selector", {}).get("matchLabels"), svc.get("metadata", {}).get("labels", {})),
                "ServiceMonitor", "selector.matchLabels must match the Service labels")
    fails.check(nsname in smspec.get("namespaceSelector", {}).get("matchNames", []), "ServiceMonitor",
                f"namespaceSelector.matchNames must include {nsname}")
    eps = smspec.get("endpoints", [])
    fails.check(bool(eps), "ServiceMonitor", "no endpoints")
    for ep in eps:
        fails.check(ep.get("port") in sports, "ServiceMonitor", f"endpoint port {ep.get('port')!r} is not a Service port")
        fails.check(ep.get("path", "/metrics") == "/metrics", "ServiceMonitor", "endpoint path must be /metrics")
        fails.check(ep.get("interval") == "15s", "ServiceMonitor", "endpoint interval must be 15s")
    job_label = smspec.get("jobLabel")
    fails.check(job_label is None or svc.get("metadata", {}).get("labels", {}).get(job_label) == "echoloc",
                "ServiceMonitor", 'jobLabel must give job="echoloc" (the alert rules select it)')
    return fails.finish(f"{sum(len(v) for v in docs.values())} objects cross-checked")


def cmd_toml(*files: str) -> int:
    fails = Failures()
    for f in files:
        try:
            tomllib.loads(Path(f).read_text())
        except tomllib.TOMLDecodeError as e:
            fails.add(f, f"invalid TOML: {e}")
    return fails.finish(f"{len(files)} TOML file(s) parse")


# --------------------------------------------------------------------------- systemd

SYSTEMD_REQUIRED = {
    "ExecStart": "/usr/local/bin/echoloc live --config /etc/echoloc/echoloc.toml",
    "Restart": "on-failure",
    "AmbientCapabilities": "CAP_NET_RAW",
    "CapabilityBoundingSet": "CAP_NET_RAW",
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes",
    "ProtectClock": "yes",
    "ProtectHostname": "yes",
    "RestrictNamespaces": "yes",
    "RestrictRealtime": "yes",
    "RestrictSUIDSGID": "yes",
    "LockPersonality": "yes",
    "MemoryDenyWriteExecute": "yes",
    "SystemCallArchitectures": "native",
    "RestrictAddressFamilies": "AF_PACKET AF_INET AF_INET6 AF_UNIX AF_NETLINK",
}


def cmd_systemd(unit: str) -> int:
    fails = Failures()
    values: dict[str, list[str]] = {}
    section = ""
    for raw in Path(unit).read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
            continue
        key, _, value = line.partition("=")
        values.setdefault(f"{section}{key.strip()}", []).append(value.strip())
    svc = {k[len("[Service]"):]: v for k, v in values.items() if k.startswith("[Service]")}
    for key, want in SYSTEMD_REQUIRED.items():
        got = svc.get(key, [])
        if key == "RestrictAddressFamilies":
            fails.check(len(got) == 1 and set(got[0].split()) == set(want.split()), unit,
                        f"{key} must be exactly {want!r}, is {got}")
        else:
            fails.check(got == [want], unit, f"{key} must be {want!r}, is {got}")
    fails.check(svc.get("DynamicUser") == ["yes"] or svc.get("User") not in (None, ["root"], ["0"]), unit,
                "must run as DynamicUser or a dedicated unprivileged User")
    fails.check("@system-service" in svc.get("SystemCallFilter", []), unit,
                "SystemCallFilter must allow only @system-service")
    fails.check("PrivateUsers" not in svc or svc["PrivateUsers"] == ["no"], unit,
                "PrivateUsers would take CAP_NET_RAW out of the host network namespace")
    fails.check(values.get("[Install]WantedBy") == ["multi-user.target"], unit,
                "[Install] WantedBy=multi-user.target")
    return fails.finish(f"{len(SYSTEMD_REQUIRED) + 4} hardening requirements met")


# --------------------------------------------------------------------------- alert tests

def cmd_alert_tests(alerts: str, *tests: str) -> int:
    import yaml

    fails = Failures()
    names = [r["alert"] for g in yaml.safe_load(Path(alerts).read_text())["groups"]
             for r in g["rules"] if "alert" in r]
    fired: set[str] = set()
    silent: set[str] = set()
    for f in tests:
        for case in yaml.safe_load(Path(f).read_text()).get("tests", []):
            for t in case.get("alert_rule_test", []) or []:
                (fired if t.get("exp_alerts") else silent).add(t["alertname"])
    for name in names:
        fails.check(name in fired, alerts, f"{name} has no test where it fires")
        fails.check(name in silent, alerts, f"{name} has no test where it stays silent")
    for name in sorted((fired | silent) - set(names)):
        fails.add(", ".join(tests), f"tests name an alert that does not exist: {name}")
    return fails.finish(f"{len(names)} alerts each tested firing and not firing")


def cmd_configmap_toml(daemonset_path: str, out: str) -> int:
    import yaml

    for doc in yaml.safe_load_all(Path(daemonset_path).read_text()):
        if doc and doc.get("kind") == "ConfigMap" and "echoloc.toml" in doc.get("data", {}):
            Path(out).write_text(doc["data"]["echoloc.toml"])
            return 0
    print(f"  {daemonset_path}: no ConfigMap with key echoloc.toml")
    return 1


def cmd_exposition(contract_path: str, metrics_file: str) -> int:
    contract = Contract(contract_path)
    fails = Failures()
    families: set[str] = set()
    series = 0
    label_re = re.compile(r'([A-Za-z_]\w*)="((?:[^"\\]|\\.)*)"')
    for line in Path(metrics_file).read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        m = re.match(r"([A-Za-z_:][\w:]*)(\{[^}]*\})?\s", line)
        if not m:
            fails.add(metrics_file, f"cannot parse {line[:80]!r}")
            continue
        name, labels = m.group(1), dict(label_re.findall(m.group(2) or ""))
        series += 1
        spec = contract.labels_of(name)
        if spec is None:
            fails.add(metrics_file, f"exported metric {name!r} is not in the contract")
            continue
        families.add(name)
        for label, value in labels.items():
            if label not in spec:
                fails.add(metrics_file, f"{name} has label {label!r}, not in the contract {sorted(spec)}")
            elif spec[label] and value not in spec[label]:
                fails.add(metrics_file, f"{name}{{{label}={value!r}}}: not in {sorted(spec[label])}")
        for label in spec:
            if label not in labels:
                fails.add(metrics_file, f"{name} lacks contract label {label!r}")
    # Deduplicate repeated messages (one per series otherwise).
    fails.items = list(dict.fromkeys(fails.items))
    fails.check(series > 0, metrics_file, "no series scraped")
    return fails.finish(f"{series} series in {len(families)} names, all in the contract")


COMMANDS = {
    "dockerfile": cmd_dockerfile,
    "kubernetes": cmd_kubernetes,
    "toml": cmd_toml,
    "rules": cmd_rules,
    "grafana": cmd_grafana,
    "systemd": cmd_systemd,
    "alert-tests": cmd_alert_tests,
    "configmap-toml": cmd_configmap_toml,
    "exposition": cmd_exposition,
}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        print(__doc__)
        sys.exit(2)
    sys.exit(COMMANDS[sys.argv[1]](*sys.argv[2:]))
