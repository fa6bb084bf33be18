{{/* Chart name, truncated to the 63 characters Kubernetes names allow. */}}
{{- define "o2c.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Resource name prefix: the release name, plus the chart name unless it already contains it. */}}
{{- define "o2c.fullname" -}}
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

{{/* The headless Service that gives each worker a stable DNS name. */}}
{{- define "o2c.peersName" -}}
{{- printf "%s-peers" (include "o2c.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "o2c.selectorLabels" -}}
app.kubernetes.io/name: {{ include "o2c.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "o2c.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "o2c.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: o2c-streams
{{- end }}

{{- define "o2c.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "o2c.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* True (non-empty) when the named sink is enabled. */}}
{{- define "o2c.sinkEnabled" -}}
{{- if has .sink .root.Values.sinks }}true{{ end }}
{{- end }}

{{/* Values that cannot work together fail the render with a message, not a broken pod. */}}
{{- define "o2c.validate" -}}
{{- $protocols := list "PLAINTEXT" "SSL" "SASL_PLAINTEXT" "SASL_SSL" }}
{{- if not (has .Values.kafka.securityProtocol $protocols) }}
{{- fail (printf "kafka.securityProtocol must be one of %s, got %q" (join ", " $protocols) .Values.kafka.securityProtocol) }}
{{- end }}
{{- if hasPrefix "SASL_" .Values.kafka.securityProtocol }}
{{- $mechanisms := list "PLAIN" "SCRAM-SHA-256" "SCRAM-SHA-512" }}
{{- if not (has .Values.kafka.sasl.mechanism $mechanisms) }}
{{- fail (printf "kafka.sasl.mechanism must be one of %s with %s" (join ", " $mechanisms) .Values.kafka.securityProtocol) }}
{{- end }}
{{- if not .Values.kafka.sasl.existingSecret }}
{{- fail (printf "kafka.sasl.existingSecret (a Secret with the SASL password) is required with %s" .Values.kafka.securityProtocol) }}
{{- end }}
{{- end }}
{{- if gt (int .Values.replicaCount) (int .Values.kafka.partitions) }}
{{- fail (printf "replicaCount (%d) exceeds kafka.partitions (%d): a worker without partitions is never ready" (int .Values.replicaCount) (int .Values.kafka.partitions)) }}
{{- end }}
{{- if not (has .Values.sla.clock (list "wall" "event")) }}
{{- fail (printf "sla.clock must be wall or event, got %q" .Values.sla.clock) }}
{{- end }}
{{- if not (has .Values.streams.processingGuarantee (list "exactly_once" "at_least_once")) }}
{{- fail (printf "streams.processingGuarantee must be exactly_once or at_least_once, got %q" .Values.streams.processingGuarantee) }}
{{- end }}
{{- range .Values.sinks }}
{{- if not (has . (list "webhook" "postgres")) }}
{{- fail (printf "sinks: unknown sink %q (known: webhook, postgres)" .) }}
{{- end }}
{{- end }}
{{- if and (include "o2c.sinkEnabled" (dict "root" . "sink" "webhook")) (not .Values.webhook.url) }}
{{- fail "webhook.url is required when sinks has webhook" }}
{{- end }}
{{- if and (include "o2c.sinkEnabled" (dict "root" . "sink" "postgres")) (not .Values.postgres.existingSecret) }}
{{- fail "postgres.existingSecret (a Secret with the DSN) is required when sinks has postgres" }}
{{- end }}
{{- if and .Values.apiAuth.enabled (not .Values.apiAuth.existingSecret) }}
{{- fail "apiAuth.existingSecret (a Secret with the API token hashes, `o2c token new`) is required when apiAuth.enabled" }}
{{- end }}
{{- if and .Values.serviceMonitor.enabled .Values.apiAuth.enabled (not .Values.apiAuth.metricsPublic) (not .Values.serviceMonitor.tokenSecret) }}
{{- fail "serviceMonitor.tokenSecret (a viewer API token) is required when apiAuth.metricsPublic is false" }}
{{- end }}
{{- range $name, $_ := .Values.settings }}
{{- if not (hasPrefix "O2C_" $name) }}
{{- fail (printf "settings: %q is not an O2C_* setting" $name) }}
{{- end }}
{{- if has $name (list "O2C_WEB_HOST" "O2C_WEB_PORT" "O2C_WEB_CANONICAL_URL" "O2C_DATA_DIR" "O2C_SLA_POLICY_PATH" "O2C_KAFKA_SSL_CAFILE") }}
{{- fail (printf "settings: %s is set by the chart from its own values (see README)" $name) }}
{{- end }}
{{- if has $name (list "O2C_KAFKA_SASL_PASSWORD" "O2C_WEBHOOK_SECRET" "O2C_POSTGRES_DSN" "O2C_API_TOKENS") }}
{{- fail (printf "settings: %s is a secret; reference an existing Secret instead (see README)" $name) }}
{{- end }}
{{- end }}
{{- end }}
