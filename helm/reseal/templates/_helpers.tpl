{{/*
Chart name, truncated to 63 characters (DNS label).
*/}}
{{- define "reseal.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: <release>-<chart>, or the release name when it already contains the chart name.
*/}}
{{- define "reseal.fullname" -}}
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

{{- define "reseal.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "reseal.selectorLabels" -}}
app.kubernetes.io/name: {{ include "reseal.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "reseal.labels" -}}
helm.sh/chart: {{ include "reseal.chart" . }}
{{ include "reseal.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: broker
app.kubernetes.io/part-of: reseal
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "reseal.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "reseal.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "reseal.configMapName" -}}
{{- printf "%s-config" (include "reseal.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Image reference: repository:tag (tag defaults to appVersion), or repository@digest.
*/}}
{{- define "reseal.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag | toString) }}
{{- end }}
{{- end }}

{{/* Paths inside the container. */}}
{{- define "reseal.configDir" -}}/etc/reseal/config{{- end }}
{{- define "reseal.configPath" -}}/etc/reseal/config/reseal.yaml{{- end }}
{{- define "reseal.tlsDir" -}}/etc/reseal/tls{{- end }}

{{/*
True ("true") when the pods use IRSA: the flag is on or a role ARN is given.
*/}}
{{- define "reseal.irsa" -}}
{{- if or .Values.aws.irsa .Values.serviceAccount.irsaRoleArn }}true{{- end }}
{{- end }}

{{/*
The IRSA role ARN; required when aws.irsa is on.
*/}}
{{- define "reseal.irsaRoleArn" -}}
{{- if .Values.aws.irsa }}
{{- required "serviceAccount.irsaRoleArn is required when aws.irsa is true (the IAM role the pods assume)" .Values.serviceAccount.irsaRoleArn }}
{{- else }}
{{- .Values.serviceAccount.irsaRoleArn }}
{{- end }}
{{- end }}

{{/*
The TLS Secret name; required when tls.enabled.
*/}}
{{- define "reseal.tlsSecretName" -}}
{{- required "tls.secretName is required when tls.enabled is true (a Secret with tls.crt, tls.key and, for mTLS, ca.crt)" .Values.tls.secretName }}
{{- end }}

{{/*
Seconds between SIGKILL and the pod's deletion request: preStop + drain + margin.
*/}}
{{- define "reseal.terminationGracePeriodSeconds" -}}
{{- $pre := int .Values.preStopSleepSeconds }}
{{- $grace := int .Values.server.shutdownGraceSeconds }}
{{- if kindIs "invalid" .Values.terminationGracePeriodSeconds }}
{{- add $pre $grace 5 }}
{{- else }}
{{- $t := int .Values.terminationGracePeriodSeconds }}
{{- if le $t (add $pre $grace) }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must exceed preStopSleepSeconds + server.shutdownGraceSeconds (%d + %d)" $t $pre $grace) }}
{{- end }}
{{- $t }}
{{- end }}
{{- end }}

{{/*
Cross-field checks that a JSON schema cannot express. Included by the Deployment.
*/}}
{{- define "reseal.validate" -}}
{{- if and .Values.tls.mtls (not .Values.tls.enabled) }}
{{- fail "tls.mtls requires tls.enabled (mutual TLS is TLS with client certificates)" }}
{{- end }}
{{- if and .Values.autoscaling.enabled (gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) }}
{{- fail "autoscaling.minReplicas must not exceed autoscaling.maxReplicas" }}
{{- end }}
{{- $live := mul (int .Values.probes.liveness.periodSeconds) (int .Values.probes.liveness.failureThreshold) }}
{{- if le (int $live) (int .Values.server.shutdownGraceSeconds) }}
{{- fail (printf "probes.liveness.periodSeconds * failureThreshold (%d s) must exceed server.shutdownGraceSeconds (%d s): health reports NOT_SERVING while a pod drains" (int $live) (int .Values.server.shutdownGraceSeconds)) }}
{{- end }}
{{- if hasKey .Values.config "server" }}
{{- fail "config.server is managed by the chart: use the top-level `server`, `ports` and `tls` values" }}
{{- end }}
{{- end }}

{{/*
PodDisruptionBudget bound: minAvailable when set (non-empty), else maxUnavailable.
*/}}
{{- define "reseal.pdbMinAvailable" -}}
{{- $min := .Values.podDisruptionBudget.minAvailable }}
{{- if and (not (kindIs "invalid" $min)) (ne (toString $min) "") }}{{ $min }}{{- end }}
{{- end }}

{{/*
The `server:` block of reseal.yaml (read by reseal at start only).
*/}}
{{- define "reseal.serverConfig" -}}
{{- $host := .Values.server.listenHost -}}
server:
  listen: {{ printf "%s:%d" $host (int .Values.ports.grpc) | quote }}
  health_listen: {{ printf "%s:%d" $host (int .Values.ports.health) | quote }}
  admin_listen: {{ printf "%s:%d" $host (int .Values.ports.admin) | quote }}
  {{- if .Values.httpApi.enabled }}
  http_listen: {{ printf "%s:%d" $host (int .Values.ports.http) | quote }}
  {{- end }}
  log_format: {{ .Values.server.logFormat | quote }}
  max_request_bytes: {{ int64 .Values.server.maxRequestBytes }}
  max_concurrent_requests: {{ int64 .Values.server.maxConcurrentRequests }}
  request_timeout: {{ .Values.server.requestTimeout | quote }}
  reload_interval: {{ .Values.server.reloadInterval | quote }}
  shutdown_grace: {{ printf "%ds" (int .Values.server.shutdownGraceSeconds) | quote }}
  {{- with .Values.server.workerThreads }}
  worker_threads: {{ int . }}
  {{- end }}
  io_scheduling: {{ .Values.server.ioScheduling | default "batch" | quote }}
  {{- if .Values.tls.enabled }}
  {{- $_ := include "reseal.tlsSecretName" . }}
  tls:
    cert_file: {{ include "reseal.tlsDir" . }}/tls.crt
    key_file: {{ include "reseal.tlsDir" . }}/tls.key
    {{- if .Values.tls.mtls }}
    client_ca_file: {{ include "reseal.tlsDir" . }}/ca.crt
    {{- end }}
  {{- end }}
{{- end }}

{{/*
Settings reseal reads only at start: the server block and config.aws. Their
checksum goes on the pod template so that changing them rolls the pods, while
registry changes (hot-reloaded) do not.
*/}}
{{- define "reseal.startupSettings" -}}
{{ include "reseal.serverConfig" . }}
{{- with .Values.config.aws }}
{{ dict "aws" . | toYaml }}
{{- end }}
{{- end }}

{{/*
The whole reseal.yaml: the chart's server block and the registry from
.Values.config. The same text goes into the ConfigMap the pods mount and into
the pre-install/pre-upgrade hook that validates it.
*/}}
{{- define "reseal.configYaml" -}}
# Rendered by the reseal Helm chart. The server block (and aws) are read at
# start; everything else is hot-reloaded every server.reload_interval.
{{ include "reseal.serverConfig" . }}
{{- with omit .Values.config "server" }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Labels of the validation hook: not the selector labels, so that neither the
Service nor the PodDisruptionBudget ever selects the hook's pod.
*/}}
{{- define "reseal.hookLabels" -}}
helm.sh/chart: {{ include "reseal.chart" . }}
app.kubernetes.io/name: {{ printf "%s-validate" (include "reseal.name" .) | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: validate-hook
app.kubernetes.io/part-of: reseal
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
The OTLP collector's port, from config.telemetry.otlp_endpoint (default 4317).
Empty when no endpoint is set.
*/}}
{{- define "reseal.otlpPort" -}}
{{- $endpoint := "" }}
{{- with .Values.config.telemetry }}{{ $endpoint = .otlp_endpoint | default "" }}{{ end }}
{{- if $endpoint }}
{{- $host := (urlParse $endpoint).host }}
{{- $port := regexFind "[0-9]+$" (regexFind ":[0-9]+$" $host) }}
{{- $port | default "4317" }}
{{- end }}
{{- end }}
