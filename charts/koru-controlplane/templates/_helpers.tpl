{{/*
Names and labels shared by every template of the chart.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "koru-controlplane.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The prefix of every object name: fullnameOverride, or the release name (plus the chart name unless
the release name already contains it). Cut to 63 characters, the limit of a DNS label.
*/}}
{{- define "koru-controlplane.fullname" -}}
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

{{/* chart-version, for the helm.sh/chart label. */}}
{{- define "koru-controlplane.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels that select the control plane pods; never change them, a Deployment's selector is immutable. */}}
{{- define "koru-controlplane.selectorLabels" -}}
app.kubernetes.io/name: {{ include "koru-controlplane.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels on every object of the release. */}}
{{- define "koru-controlplane.labels" -}}
helm.sh/chart: {{ include "koru-controlplane.chart" . }}
{{ include "koru-controlplane.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/component: control-plane
app.kubernetes.io/part-of: koru-delta
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The ServiceAccount the control plane runs as. */}}
{{- define "koru-controlplane.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "koru-controlplane.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name must name an existing ServiceAccount when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The image reference. */}}
{{- define "koru-controlplane.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/* The Secret with the database URL. */}}
{{- define "koru-controlplane.databaseSecret" -}}
{{- default (printf "%s-database" (include "koru-controlplane.fullname" .)) .Values.database.existingSecret }}
{{- end }}

{{/* The Secret with the signing keys. */}}
{{- define "koru-controlplane.keysSecret" -}}
{{- default (printf "%s-keys" (include "koru-controlplane.fullname" .)) .Values.signingKeys.existingSecret }}
{{- end }}

{{/* KORU_PUBLIC_URL: publicUrl, else derived from the first Ingress host; empty when neither. */}}
{{- define "koru-controlplane.publicUrl" -}}
{{- if .Values.publicUrl }}
{{- .Values.publicUrl }}
{{- else if and .Values.ingress.enabled .Values.ingress.hosts }}
{{- $host := (first .Values.ingress.hosts).host }}
{{- printf "%s://%s" (ternary "https" "http" (gt (len .Values.ingress.tls) 0)) $host }}
{{- end }}
{{- end }}

{{/* The gateway's object names: <fullname>-gateway. */}}
{{- define "koru-controlplane.gateway.fullname" -}}
{{- printf "%s-gateway" (include "koru-controlplane.fullname" . | trunc 55 | trimSuffix "-") }}
{{- end }}

{{/* Labels that select the gateway pods (never the control plane's: its selector lacks the component). */}}
{{- define "koru-controlplane.gateway.selectorLabels" -}}
app.kubernetes.io/name: {{ include "koru-controlplane.name" . }}-gateway
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels on the gateway's objects. */}}
{{- define "koru-controlplane.gateway.labels" -}}
helm.sh/chart: {{ include "koru-controlplane.chart" . }}
{{ include "koru-controlplane.gateway.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.gateway.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/component: gateway
app.kubernetes.io/part-of: koru-delta
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The Secret holding the shared gateway secret (read by the gateway and the control plane). */}}
{{- define "koru-controlplane.gateway.secret" -}}
{{- default (printf "%s-gateway" (include "koru-controlplane.fullname" .)) .Values.gateway.secret.existingSecret }}
{{- end }}
