{{/* Chart name, truncated to the 63 characters Kubernetes allows in names. */}}
{{- define "rdm.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Release-qualified base name, e.g. "prod-rdm" (or just the release name if it contains the chart name). */}}
{{- define "rdm.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Name of one component's objects: (dict "root" $ "name" "release") -> "prod-rdm-release". */}}
{{- define "rdm.componentName" -}}
{{- printf "%s-%s" (include "rdm.fullname" .root) .name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "rdm.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "rdm.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: rdm
{{- end -}}

{{/* Selector labels of one component: (dict "root" $ "name" "release"). Immutable once deployed. */}}
{{- define "rdm.selectorLabels" -}}
app.kubernetes.io/name: {{ include "rdm.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .name }}
{{- end -}}

{{/* All labels of one component's objects. */}}
{{- define "rdm.componentLabels" -}}
{{ include "rdm.labels" .root }}
app.kubernetes.io/component: {{ .name }}
{{- end -}}

{{/*
One component's effective settings: componentDefaults deep-merged with components.<name>
(the component wins). Returns YAML; use with fromYaml.
*/}}
{{- define "rdm.component" -}}
{{- $defaults := deepCopy .root.Values.componentDefaults -}}
{{- $own := deepCopy (index .root.Values.components .name) -}}
{{- toYaml (mergeOverwrite $defaults $own) -}}
{{- end -}}

{{/* Image reference of one component: (dict "root" $ "name" "release" "c" $component). */}}
{{- define "rdm.image" -}}
{{- $img := .root.Values.image -}}
{{- $own := .c.image | default dict -}}
{{- $registry := $own.registry | default $img.registry -}}
{{- $repository := $own.repository | default (printf "%s/%s" $img.repository .name) -}}
{{- $tag := $own.tag | default $img.tag | default .root.Chart.AppVersion -}}
{{- $ref := ternary (printf "%s/%s" $registry $repository) $repository (ne (toString $registry) "") -}}
{{- if $own.digest -}}
{{- printf "%s@%s" $ref $own.digest -}}
{{- else -}}
{{- printf "%s:%s" $ref $tag -}}
{{- end -}}
{{- end -}}

{{- define "rdm.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "rdm.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Name of the Secret this chart creates for inline values (development only). */}}
{{- define "rdm.secretName" -}}
{{- printf "%s-secrets" (include "rdm.fullname" .) -}}
{{- end -}}

{{/* secretKeyRef of the PostgreSQL password. */}}
{{- define "rdm.postgresPasswordRef" -}}
{{- if .Values.postgresql.password.existingSecret -}}
name: {{ .Values.postgresql.password.existingSecret }}
key: {{ .Values.postgresql.password.key }}
{{- else -}}
name: {{ include "rdm.secretName" . }}
key: postgres-password
{{- end -}}
{{- end -}}

{{/* Fails the render early, with a clear message, when the values cannot give a runnable platform. */}}
{{- define "rdm.validate" -}}
{{- $auth := .Values.auth -}}
{{- $ways := 0 -}}
{{- if $auth.jwksUrl }}{{ $ways = add1 $ways }}{{ end -}}
{{- if $auth.publicKey.existingSecret }}{{ $ways = add1 $ways }}{{ end -}}
{{- if or $auth.jwtSecret.existingSecret $auth.jwtSecret.value }}{{ $ways = add1 $ways }}{{ end -}}
{{- if eq $ways 0 -}}
{{- fail "auth: set one of auth.jwksUrl, auth.publicKey.existingSecret, auth.jwtSecret.existingSecret (or auth.jwtSecret.value for development)" -}}
{{- end -}}
{{- if gt $ways 1 -}}
{{- fail "auth: set only one of auth.jwksUrl, auth.publicKey, auth.jwtSecret" -}}
{{- end -}}
{{- if and $auth.jwtSecret.value (lt (len $auth.jwtSecret.value) 32) -}}
{{- fail "auth.jwtSecret.value must be at least 32 characters (HS256)" -}}
{{- end -}}
{{- if not (or .Values.postgresql.password.existingSecret .Values.postgresql.password.value) -}}
{{- fail "postgresql: set postgresql.password.existingSecret (or postgresql.password.value for development)" -}}
{{- end -}}
{{- if not .Values.kafka.brokers -}}
{{- fail "kafka.brokers is required" -}}
{{- end -}}
{{- end -}}

{{/* Environment of one component: (dict "root" $ "name" "release" "c" $component). */}}
{{- define "rdm.env" -}}
{{- $root := .root -}}
{{- $c := .c -}}
- name: RDM_DATABASE_PASSWORD
  valueFrom:
    secretKeyRef:
      {{- include "rdm.postgresPasswordRef" $root | nindent 6 }}
{{- $pg := $root.Values.postgresql }}
{{- $query := ternary (printf "?%s" $pg.params) "" (ne (toString $pg.params) "") }}
# $(RDM_DATABASE_PASSWORD) is expanded by Kubernetes from the variable above.
- name: DATABASE_URL
  value: {{ printf "postgres://%s:$(RDM_DATABASE_PASSWORD)@%s:%v/%s%s" $pg.user $pg.host $pg.port $c.database $query | quote }}
{{- if eq $c.kind "grpc" }}
- name: GRPC_HOST
  value: "0.0.0.0"
- name: GRPC_PORT
  value: {{ $c.port | quote }}
{{- else }}
- name: HTTP_HOST
  value: "0.0.0.0"
- name: HTTP_PORT
  value: {{ $c.port | quote }}
{{- end }}
{{- with $root.Values.auth.publicKey.existingSecret }}
- name: AUTH_PUBLIC_KEY
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $root.Values.auth.publicKey.key }}
{{- end }}
{{- if $root.Values.auth.jwtSecret.existingSecret }}
- name: AUTH_JWT_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ $root.Values.auth.jwtSecret.existingSecret }}
      key: {{ $root.Values.auth.jwtSecret.key }}
{{- else if $root.Values.auth.jwtSecret.value }}
- name: AUTH_JWT_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ include "rdm.secretName" $root }}
      key: jwt-secret
{{- end }}
{{- with $root.Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- with $c.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}
