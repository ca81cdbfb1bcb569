#!/usr/bin/python3
"""Structural checks of the objects tests/helm/test_chart.sh rendered (prints ok/FAIL lines).

    check_objects.py OUT values.yaml values-prod.yaml values-azure-cluster.yaml \
        docs/CONFIGURATION.md include/jobwire/metrics.h CMakeLists.txt Chart.yaml

OUT holds default.yaml, prod.yaml, azure.yaml (helm template) and notes-*.yaml (NOTES.txt).
"""
import json
import os
import re
import sys

import yaml

out, default_values, prod_values, azure_values, config_doc, metrics_h, cmakelists, chart_yaml = sys.argv[1:9]
doc_keys = set(re.findall(r"^\| `([a-z_]+)` \|", open(config_doc).read(), re.M))
# Keys of the server work under way (/work/spec/protocol-changes.md) that the chart renders
# before docs/CONFIGURATION.md lists them.
doc_keys |= {"admin_port", "admin_listen_address"}
metric_names = set(re.findall(r'"((?:jobwire|process)_[a-z_]+)"', open(metrics_h).read()))


def check(name, cond, detail=""):
    print(("ok   " if cond else "FAIL ") + name + ("" if cond else f"  [{detail}]"))


def objs(name):
    return [d for d in yaml.safe_load_all(open(os.path.join(out, name))) if d]


def one(docs, kind):
    found = [d for d in docs if d["kind"] == kind]
    return found[0] if len(found) == 1 else None


def merged_values(*paths):
    res = {}

    def merge(a, b):
        for k, v in b.items():
            if isinstance(v, dict) and isinstance(a.get(k), dict):
                merge(a[k], v)
            else:
                a[k] = v
    for p in paths:
        merge(res, yaml.safe_load(open(p)))
    return res


def conf_of(docs):
    cm = [d for d in docs if d["kind"] == "ConfigMap" and "jobwire.conf" in d.get("data", {})]
    if len(cm) != 1:
        return None
    lines = [l.split(None, 1) for l in cm[0]["data"]["jobwire.conf"].splitlines()
             if l.strip() and not l.startswith("#")]
    return [(l[0], l[1] if len(l) > 1 else "") for l in lines]


def notes(name):
    try:
        return yaml.safe_load(open(os.path.join(out, f"notes-{name}.yaml")))["notes"]
    except Exception as e:  # noqa: BLE001
        return f"<no notes: {e}>"


def common(label, docs, values):
    t = f"[{label}] "
    dep = one(docs, "Deployment")
    check(t + "one Deployment", dep is not None)
    if dep is None:
        return None, {}
    pod = dep["spec"]["template"]["spec"]
    c = pod["containers"][0]
    port = int(values["config"]["listen_port"])
    admin = int(values["admin"]["port"])
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    check(t + "containerPort http is listen_port", ports.get("http") == port, ports)
    if admin:
        check(t + f"containerPort admin is admin.port {admin}", ports.get("admin") == admin, ports)
    ops = "admin" if admin else "http"
    for probe, path in (("startupProbe", "/healthz"), ("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        g = c.get(probe, {}).get("httpGet", {})
        check(t + f"{probe} GET {path} on port {ops}", g.get("path") == path and g.get("port") == ops, g)
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
    check(t + f"terminationGracePeriodSeconds ({tg}) > preStop sleep + drain ({sleep}+{drain})", tg > drain + sleep)
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
    check(t + "no Secret objects rendered", not [d for d in docs if d["kind"] == "Secret"])
    for e in c.get("env") or []:
        if re.search(r"PASSWORD|SECRET|TOKEN", e["name"]) and not e["name"].endswith("_FILE"):
            check(t + f"env {e['name']} comes from a secretKeyRef",
                  "value" not in e and "secretKeyRef" in e.get("valueFrom", {}), e)
    pairs = conf_of(docs)
    check(t + "ConfigMap with jobwire.conf", pairs is not None)
    keys = [k for k, _ in pairs or []]
    conf = dict(pairs or [])
    unknown = [k for k in keys if k not in doc_keys]
    check(t + "every jobwire.conf key is documented in docs/CONFIGURATION.md", not unknown, unknown)
    dup = sorted({k for k in keys if keys.count(k) > 1})
    check(t + "no key twice in jobwire.conf (jobwire refuses that)", not dup, dup)
    check(t + "listen_address 0.0.0.0 in the container", conf.get("listen_address") == "0.0.0.0")
    check(t + "no redis_password / jwt_secret in the ConfigMap", not {"redis_password", "jwt_secret"} & set(conf))
    check(t + "no credentials in redis_url", "@" not in conf.get("redis_url", ""))
    check(t + "drain_window_ms from drain.seconds", conf.get("drain_window_ms") == str(drain * 1000), conf.get("drain_window_ms"))
    want_proxies = ",".join(values["trustedProxies"]) or '""'
    check(t + f"trusted_proxies from trustedProxies ({want_proxies})", conf.get("trusted_proxies") == want_proxies,
          conf.get("trusted_proxies"))
    if admin:
        check(t + f"admin_port {admin} in jobwire.conf", conf.get("admin_port") == str(admin), conf.get("admin_port"))
    else:
        check(t + "no admin_port line with admin.port 0", "admin_port" not in conf)
    web = values["dashboard"]["webRoot"] if values["dashboard"]["enabled"] else '""'
    check(t + f"web_root {web} (dashboard.enabled {values['dashboard']['enabled']})", conf.get("web_root") == web,
          conf.get("web_root"))
    svc = one(docs, "Service")
    sports = {p["name"]: p for p in (svc or {}).get("spec", {}).get("ports", [])}
    check(t + "Service port http targets the http port", sports.get("http", {}).get("targetPort") == "http", sports)
    if admin:
        check(t + "Service port metrics targets the admin port", sports.get("metrics", {}).get("targetPort") == "admin", sports)
    pdb = one(docs, "PodDisruptionBudget")
    check(t + "PodDisruptionBudget", pdb is not None and pdb["apiVersion"] == "policy/v1")
    ing = one(docs, "Ingress")
    if ing:
        backends = {p["backend"]["service"]["port"].get("name") for r in ing["spec"]["rules"]
                    for p in r["http"]["paths"]}
        check(t + "Ingress routes only the client port (http)", backends == {"http"}, backends)
    sm = one(docs, "ServiceMonitor")
    if sm:
        ep = sm["spec"]["endpoints"][0]
        check(t + f"ServiceMonitor scrapes /metrics on {'metrics' if admin else 'http'}",
              ep["path"] == "/metrics" and ep["port"] == ("metrics" if admin else "http"), ep)
    return dep, conf


# ---- default values
docs = objs("default.yaml")
values = merged_values(default_values)
dep, conf = common("default", docs, values)
kinds = {d["kind"] for d in docs}
check("[default] replicas from replicaCount", dep is not None and dep["spec"].get("replicas") == values["replicaCount"])
for k in ("HorizontalPodAutoscaler", "Ingress", "ServiceMonitor", "NetworkPolicy"):
    check(f"[default] no {k} unless enabled", k not in kinds)
check("[default] dashboard off: web_root \"\"", conf.get("web_root") == '""')
check("[default] admin port 9090", conf.get("admin_port") == "9090")
check("[default] trusted proxies: the private ranges of pod networks",
      {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"} <= set(conf.get("trusted_proxies", "").split(",")))
img = dep["spec"]["template"]["spec"]["containers"][0]["image"] if dep else ""
chart = yaml.safe_load(open(chart_yaml))
check("[default] image jobwire:<appVersion>", img == f"jobwire:{chart['appVersion']}", img)
n = notes("default")
check("[default] NOTES warn that no authentication is configured", "no authentication is configured" in n, n)
check("[default] NOTES name the admin port", "admin port 9090" in n, n)

# ---- production-like values (nginx)
docs = objs("prod.yaml")
values = merged_values(default_values, prod_values)
dep, conf = common("prod", docs, values)
c = dep["spec"]["template"]["spec"]["containers"][0] if dep else {}
env = {e["name"]: e for e in c.get("env") or []}
ref = env.get("REDIS_PASSWORD", {}).get("valueFrom", {}).get("secretKeyRef", {})
check("[prod] REDIS_PASSWORD from secretKeyRef of existingSecret", ref == {"name": "jobwire-redis", "key": "redis-password"}, ref)
check("[prod] JOBWIRE_JWT_SECRET from secretKeyRef", "secretKeyRef" in env.get("JOBWIRE_JWT_SECRET", {}).get("valueFrom", {}))
check("[prod] JWT public key mounted from the secret",
      any(v.get("secret", {}).get("secretName") == "jobwire-auth"
          for v in dep["spec"]["template"]["spec"].get("volumes", [])) if dep else False)
check("[prod] TLS Redis URL in the config", conf.get("redis_url", "").startswith("rediss://"))
check("[prod] trusted_proxies narrowed to the ingress pod range", conf.get("trusted_proxies") == "10.244.0.0/16")
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
    check("[prod] no other class's annotations", not [k for k in a if k.startswith(("appgw.", "haproxy."))], a)
    check("[prod] ingress class nginx, host, TLS",
          ing["spec"].get("ingressClassName") == "nginx" and
          ing["spec"]["rules"][0]["host"] == "jobs.example.com" and ing["spec"].get("tls"))
sm = one(docs, "ServiceMonitor")
check("[prod] ServiceMonitor carries the Prometheus selector label",
      sm is not None and sm["metadata"]["labels"].get("release") == "kube-prometheus-stack")
np = one(docs, "NetworkPolicy")
check("[prod] NetworkPolicy", np is not None)
if np:
    s = np["spec"]
    check("[prod] NetworkPolicy restricts ingress and egress", sorted(s["policyTypes"]) == ["Egress", "Ingress"])
    rules = {tuple(p["port"] for p in r.get("ports", [])): [
        q.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name") for q in r.get("from", [])]
        for r in s["ingress"]}
    check("[prod] client port only from the ingress controller namespace", rules.get(("http",)) == ["ingress-nginx"], rules)
    check("[prod] admin port only from the monitoring namespace", rules.get(("admin",)) == ["monitoring"], rules)
    eports = [(p["port"], p.get("endPort"), p.get("protocol", "TCP")) for r in s["egress"] for p in r.get("ports", [])]
    check("[prod] egress to Redis 6380", (6380, None, "TCP") in eports, eports)
    check("[prod] egress to the cluster shard range 15000-15999 (endPort)", (15000, 15999, "TCP") in eports, eports)
    check("[prod] egress to DNS 53/UDP and 53/TCP", (53, None, "UDP") in eports and (53, None, "TCP") in eports, eports)
    check("[prod] egress only to Redis and DNS", {p for p, _, _ in eports} == {6380, 15000, 53}, eports)
dash = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"].get("labels", {}).get("grafana_dashboard") == "1"]
check("[prod] Grafana dashboard ConfigMap with grafana_dashboard label", len(dash) == 1)
if dash:
    check("[prod] dashboard in the monitoring namespace", dash[0]["metadata"].get("namespace") == "monitoring")
    try:
        board = json.loads(next(iter(dash[0]["data"].values())))
        exprs = " ".join(t["expr"] for p in board["panels"] for t in p.get("targets", []))
        check("[prod] dashboard JSON parses", True)
    except Exception as e:  # noqa: BLE001
        exprs = ""
        check("[prod] dashboard JSON parses", False, e)
    for needle in ("jobwire_connections", "rate(jobwire_deliveries_total", "histogram_quantile(0.99",
                   "jobwire_delivery_latency_seconds_bucket", "jobwire_client_closes_total",
                   "jobwire_upstream_up", "jobwire_upstream_reconnects_total",
                   "process_resident_memory_bytes{"):
        check(f"[prod] dashboard shows {needle}", needle in exprs)
    used = {re.sub(r"_(bucket|sum|count)$", "", m) for m in re.findall(r"\b(?:jobwire|process)_[a-z_]+", exprs)}
    unknown = sorted(used - metric_names)
    check("[prod] every dashboard metric exists in metrics.h "
          "(process_* are the standard names of protocol-changes.md: lead's work)", not unknown, unknown)
n = notes("prod")
check("[prod] NOTES: no authentication warning (a JWT secret is configured)", "no authentication" not in n, n)

# ---- Azure clustered cache over TLS, Application Gateway
docs = objs("azure.yaml")
values = merged_values(default_values, azure_values)
dep, conf = common("azure", docs, values)
pod = dep["spec"]["template"]["spec"] if dep else {}
c = pod.get("containers", [{}])[0]
check("[azure] image by registry/repository@digest",
      c.get("image") == "jobwireacr.azurecr.io/platform/jobwire@sha256:" + "0123456789abcdef" * 4, c.get("image"))
check("[azure] rediss:// URL and redis_tls yes", conf.get("redis_url", "").startswith("rediss://") and conf.get("redis_tls") == "yes")
seeds = conf.get("redis_cluster_nodes", "").split(",")
check("[azure] six shard seeds on 15000-15005", [s.rsplit(":", 1)[1] for s in seeds] == [str(p) for p in range(15000, 15006)], seeds)
vols = {v["name"]: v for v in pod.get("volumes", [])}
mounts = {m["name"]: m for m in c.get("volumeMounts", [])}
tlsvol = vols.get("redis-tls", {}).get("secret", {})
check("[azure] Secret redis.tls.existingSecret mounted read-only at redis.tls.mountPath",
      tlsvol.get("secretName") == "jobwire-cache-tls" and mounts.get("redis-tls", {}).get("mountPath") == "/etc/jobwire/redis-tls"
      and mounts["redis-tls"].get("readOnly") is True, (tlsvol, mounts.get("redis-tls")))
check("[azure] its items are the CA, certificate and key",
      sorted(i["key"] for i in tlsvol.get("items", [])) == ["ca.pem", "client.key", "client.pem"], tlsvol)
for key, file in (("redis_tls_ca_file", "ca.pem"), ("redis_tls_cert_file", "client.pem"), ("redis_tls_key_file", "client.key")):
    check(f"[azure] {key} is the mounted {file}", conf.get(key) == "/etc/jobwire/redis-tls/" + file, conf.get(key))
check("[azure] extraVolumes and extraVolumeMounts", "extra-cas" in vols and mounts.get("extra-cas", {}).get("mountPath") == "/etc/jobwire/extra-cas")
env = {e["name"]: e for e in c.get("env") or []}
check("[azure] REDIS_PASSWORD from the access key Secret",
      env.get("REDIS_PASSWORD", {}).get("valueFrom", {}).get("secretKeyRef") == {"name": "jobwire-cache", "key": "primary-access-key"})
check("[azure] extraEnv appended", env.get("JOBWIRE_LOG_LEVEL", {}).get("value") == "info")
check("[azure] extraEnvFrom", c.get("envFrom") == [{"secretRef": {"name": "jobwire-extra-env"}}], c.get("envFrom"))
check("[azure] initContainers", [i["name"] for i in pod.get("initContainers", [])] == ["wait-for-dns"])
ing = one(docs, "Ingress")
a = (ing or {}).get("metadata", {}).get("annotations", {})
check("[azure] AGIC: request-timeout 3600 and connection draining",
      a.get("appgw.ingress.kubernetes.io/request-timeout") == "3600" and
      a.get("appgw.ingress.kubernetes.io/connection-draining") == "true", a)
check("[azure] AGIC health probe: /readyz on the admin port",
      a.get("appgw.ingress.kubernetes.io/health-probe-path") == "/readyz" and
      a.get("appgw.ingress.kubernetes.io/health-probe-port") == "9090", a)
check("[azure] no nginx annotations for another class", not [k for k in a if k.startswith("nginx.")], a)
np = one(docs, "NetworkPolicy")
if np:
    eports = [(p["port"], p.get("endPort")) for r in np["spec"]["egress"] for p in r.get("ports", [])]
    check("[azure] NetworkPolicy egress 6380 and 15000-15999", (6380, None) in eports and (15000, 15999) in eports, eports)
    frm = [q for r in np["spec"]["ingress"] for q in r.get("from", [])]
    check("[azure] Application Gateway subnet allowed in", {"ipBlock": {"cidr": "10.225.0.0/24"}} in frm, frm)
n = notes("azure")
check("[azure] NOTES: no authentication warning (a public key is configured)", "no authentication" not in n, n)
n = notes("noproxy")
check("[noproxy] NOTES warn about an Ingress without trusted proxies", "trustedProxies is empty" in n, n)

# ---- versions
project = re.search(r"project\(jobwire VERSION ([0-9.]+)", open(cmakelists).read()).group(1)
check(f"Chart appVersion {chart['appVersion']} is the project version {project}", chart["appVersion"] == project)
check("Chart.yaml has no placeholder home", "example.invalid" not in open(chart_yaml).read())
