{{/* Chart name, fullname and labels (the usual helm create helpers). */}}
{{- define "jobwire.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "jobwire.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "jobwire.selectorLabels" -}}
app.kubernetes.io/name: {{ include "jobwire.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "jobwire.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "jobwire.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "jobwire.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "jobwire.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The container port: jobwire's listen_port. */}}
{{- define "jobwire.port" -}}
{{- int64 (default 8080 .Values.config.listen_port) }}
{{- end }}

{{/*
One value in jobwire.conf syntax: booleans as yes/no, whole numbers without an exponent, lists
joined with commas, strings quoted when empty or when they hold blanks (the file format has no
escapes: everything between the outer quotes is the value).
*/}}
{{- define "jobwire.confValue" -}}
{{- $v := . }}
{{- if kindIs "bool" $v }}
{{- ternary "yes" "no" $v }}
{{- else if or (kindIs "float64" $v) (kindIs "int" $v) (kindIs "int64" $v) }}
{{- if eq (float64 (int64 $v)) (float64 $v) }}{{ int64 $v }}{{ else }}{{ $v }}{{ end }}
{{- else if kindIs "slice" $v }}
{{- if $v }}{{ join "," $v }}{{ else }}{{ "\"\"" }}{{ end }}
{{- else if kindIs "invalid" $v }}
{{- "\"\"" }}
{{- else }}
{{- $s := toString $v }}
{{- if contains "\n" $s }}{{ fail (printf "config values cannot span lines: %q" $s) }}{{ end }}
{{- if or (eq $s "") (regexMatch "[ \t]" $s) (hasPrefix "\"" $s) }}{{ printf "\"%s\"" $s }}{{ else }}{{ $s }}{{ end }}
{{- end }}
{{- end }}

{{/* Refuses to put secrets into the ConfigMap, and keys the chart renders from other values. */}}
{{- define "jobwire.checkConfig" -}}
{{- range $key, $hint := dict "redis_password" "redis.existingSecret" "jwt_secret" "auth.existingSecret with auth.jwtSecretKey" "redis_sentinel_password" "extraEnv (JOBWIRE_REDIS_SENTINEL_PASSWORD from a secretKeyRef)" }}
{{- if hasKey $.Values.config $key }}
{{- fail (printf "config.%s must not be set: secrets stay out of the ConfigMap; use %s" $key $hint) }}
{{- end }}
{{- end }}
{{- if and .Values.config.redis_url (regexMatch "^[a-zA-Z]+://[^/]*@" (toString .Values.config.redis_url)) }}
{{- fail "config.redis_url must not contain credentials: use redis.existingSecret for the password" }}
{{- end }}
{{- range $key, $from := dict "web_root" "dashboard.enabled / dashboard.webRoot" "admin_port" "admin.port" "trusted_proxies" "trustedProxies" "drain_window_ms" "drain.seconds" "redis_tls" "redis.tls.enabled" "redis_tls_ca_file" "redis.tls.caKey" "redis_tls_cert_file" "redis.tls.certKey" "redis_tls_key_file" "redis.tls.keyKey" }}
{{- if hasKey $.Values.config $key }}
{{- fail (printf "config.%s is rendered by the chart: set %s instead" $key $from) }}
{{- end }}
{{- end }}
{{- $tls := .Values.redis.tls }}
{{- if ne (empty $tls.certKey) (empty $tls.keyKey) }}
{{- fail "redis.tls.certKey and redis.tls.keyKey go together (a client certificate and its key)" }}
{{- end }}
{{- if and (or $tls.certKey $tls.keyKey) (not $tls.existingSecret) }}
{{- fail "redis.tls.certKey/keyKey need redis.tls.existingSecret (the Secret holding them)" }}
{{- end }}
{{- if and (or $tls.certKey $tls.existingSecret) (not $tls.enabled) }}
{{- fail "redis.tls.existingSecret/certKey are set but redis.tls.enabled is false" }}
{{- end }}
{{- if gt (len (.Values.trustedProxies | default list)) 16 }}
{{- fail "trustedProxies: at most 16 entries (jobwire's trusted_proxies limit)" }}
{{- end }}
{{- end }}

{{/* Settings the chart renders from values other than .Values.config (a dict key -> value). */}}
{{- define "jobwire.managedConfig" -}}
{{- $m := dict }}
{{- $_ := set $m "web_root" (ternary .Values.dashboard.webRoot "" .Values.dashboard.enabled) }}
{{- if gt (int .Values.admin.port) 0 }}
{{- $_ := set $m "admin_port" (int .Values.admin.port) }}
{{- end }}
{{- $_ := set $m "trusted_proxies" (.Values.trustedProxies | default list) }}
{{- $_ := set $m "drain_window_ms" (mul (int .Values.drain.seconds) 1000) }}
{{- $tls := .Values.redis.tls }}
{{- if $tls.enabled }}
{{- $_ := set $m "redis_tls" true }}
{{- if and $tls.existingSecret $tls.caKey }}
{{- $_ := set $m "redis_tls_ca_file" (printf "%s/%s" $tls.mountPath $tls.caKey) }}
{{- end }}
{{- if and $tls.existingSecret $tls.certKey }}
{{- $_ := set $m "redis_tls_cert_file" (printf "%s/%s" $tls.mountPath $tls.certKey) }}
{{- $_ := set $m "redis_tls_key_file" (printf "%s/%s" $tls.mountPath $tls.keyKey) }}
{{- end }}
{{- end }}
{{- toYaml $m }}
{{- end }}

{{/* The image reference: [registry/]repository(@digest|:tag). */}}
{{- define "jobwire.image" -}}
{{- $img := .Values.image }}
{{- $repo := $img.repository }}
{{- if $img.registry }}{{ $repo = printf "%s/%s" (trimSuffix "/" $img.registry) $img.repository }}{{ end }}
{{- if $img.digest }}
{{- printf "%s@%s" $repo $img.digest }}
{{- else }}
{{- printf "%s:%s" $repo (toString ($img.tag | default .Chart.AppVersion)) }}
{{- end }}
{{- end }}

{{/* Container port name of /healthz, /readyz, /metrics: admin, or http without an admin port. */}}
{{- define "jobwire.opsPortName" -}}
{{- if gt (int .Values.admin.port) 0 }}admin{{ else }}http{{ end }}
{{- end }}

{{- define "jobwire.opsPort" -}}
{{- if gt (int .Values.admin.port) 0 }}{{ int .Values.admin.port }}{{ else }}{{ include "jobwire.port" . }}{{ end }}
{{- end }}

{{/* One HTTP probe from .Values.probes.<name>: (list $ "name"). */}}
{{- define "jobwire.probe" -}}
{{- $root := index . 0 }}
{{- $p := index $root.Values.probes (index . 1) }}
httpGet:
  path: {{ $p.path }}
  port: {{ include "jobwire.opsPortName" $root }}
initialDelaySeconds: {{ $p.initialDelaySeconds }}
periodSeconds: {{ $p.periodSeconds }}
timeoutSeconds: {{ $p.timeoutSeconds }}
failureThreshold: {{ $p.failureThreshold }}
{{- end }}

{{/*
"true" when jobwire can authenticate anybody: a JWT secret or key from auth.*, jwt_* keys in
config, JWT variables in extraEnv, or dev_auth. extraEnvFrom cannot be inspected: "unknown".
*/}}
{{- define "jobwire.authState" -}}
{{- $jwtEnv := list "JOBWIRE_JWT_SECRET" "JWT_SECRET" "JOBWIRE_JWT_SECRET_FILE" "JOBWIRE_JWT_PUBLIC_KEYS" "JOBWIRE_DEV_AUTH" }}
{{- $ok := false }}
{{- if and .Values.auth.existingSecret (or .Values.auth.jwtSecretKey .Values.auth.publicKeyKey) }}{{ $ok = true }}{{ end }}
{{- if or .Values.config.jwt_secret_file .Values.config.jwt_public_keys }}{{ $ok = true }}{{ end }}
{{- if has (toString .Values.config.dev_auth | lower) (list "true" "yes" "on" "1") }}{{ $ok = true }}{{ end }}
{{- range .Values.extraEnv }}{{ if has .name $jwtEnv }}{{ $ok = true }}{{ end }}{{ end }}
{{- if $ok }}true{{ else if .Values.extraEnvFrom }}unknown{{ else }}false{{ end }}
{{- end }}

{{- define "jobwire.terminationGracePeriodSeconds" -}}
{{- add (int .Values.drain.preStopSleepSeconds) (int .Values.drain.seconds) (int .Values.drain.extraGraceSeconds) }}
{{- end }}
