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
{{- join "," $v }}
{{- else if kindIs "invalid" $v }}
{{- "\"\"" }}
{{- else }}
{{- $s := toString $v }}
{{- if contains "\n" $s }}{{ fail (printf "config values cannot span lines: %q" $s) }}{{ end }}
{{- if or (eq $s "") (regexMatch "[ \t]" $s) (hasPrefix "\"" $s) }}{{ printf "\"%s\"" $s }}{{ else }}{{ $s }}{{ end }}
{{- end }}
{{- end }}

{{/* Refuses to put secrets into the ConfigMap. */}}
{{- define "jobwire.checkNoSecrets" -}}
{{- if .Values.config.redis_password }}
{{- fail "config.redis_password must not be set: put the password in a Secret and name it in redis.existingSecret" }}
{{- end }}
{{- if and .Values.config.redis_url (regexMatch "^[a-zA-Z]+://[^/]*@" (toString .Values.config.redis_url)) }}
{{- fail "config.redis_url must not contain credentials: use redis.existingSecret for the password" }}
{{- end }}
{{- end }}

{{- define "jobwire.terminationGracePeriodSeconds" -}}
{{- add (int .Values.drain.preStopSleepSeconds) (int .Values.drain.seconds) (int .Values.drain.extraGraceSeconds) }}
{{- end }}
