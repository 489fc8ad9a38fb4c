{{/*
Chart name, truncated to 63 characters (the DNS label limit).
*/}}
{{- define "shelfops.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name: "<release>-<chart>", or the release name when it already contains the
chart name. Kept to 40 characters so that suffixes such as "-feature-server" still fit in 63.
*/}}
{{- define "shelfops.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Chart name and version for the helm.sh/chart label.
*/}}
{{- define "shelfops.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels on every resource.
*/}}
{{- define "shelfops.labels" -}}
helm.sh/chart: {{ include "shelfops.chart" . }}
{{ include "shelfops.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: shelfops
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Selector labels (immutable on Deployments: never add version-like values here).
*/}}
{{- define "shelfops.selectorLabels" -}}
app.kubernetes.io/name: {{ include "shelfops.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Selector labels of one component. Usage: include "shelfops.componentSelectorLabels" (list $ "redis")
*/}}
{{- define "shelfops.componentSelectorLabels" -}}
{{- $root := index . 0 -}}
{{ include "shelfops.selectorLabels" $root }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{/*
Labels of one InferenceService and its pods. They mirror
shelfops.rollout.inferenceservice.standard_labels(); tests/k8s prove the two agree.
Usage: include "shelfops.inferenceLabels" (list $ $modelName $model)
*/}}
{{- define "shelfops.inferenceLabels" -}}
{{- $root := index . 0 }}
{{- $name := index . 1 }}
{{- $model := index . 2 -}}
{{ include "shelfops.labels" $root }}
app.kubernetes.io/component: inference
shelfops.io/model: {{ $name }}
shelfops.io/model-version: {{ $model.version | quote }}
{{- end }}

{{/*
Image reference from {repository, tag, digest}; a digest wins over the tag.
Usage: include "shelfops.image" (dict "image" .Values.toolsImage "default" .Chart.AppVersion)
*/}}
{{- define "shelfops.image" -}}
{{- $img := .image }}
{{- if $img.digest }}
{{- printf "%s@%s" $img.repository $img.digest }}
{{- else }}
{{- printf "%s:%s" $img.repository (default .default $img.tag) }}
{{- end }}
{{- end }}

{{/*
ServiceAccount name of a component. Usage: include "shelfops.serviceAccountName" (list $ "inference" .Values.inference.serviceAccount)
*/}}
{{- define "shelfops.serviceAccountName" -}}
{{- $root := index . 0 }}
{{- $sa := index . 2 }}
{{- default (printf "%s-%s" (include "shelfops.fullname" $root) (index . 1)) $sa.name }}
{{- end }}

{{/*
imagePullSecrets block.
*/}}
{{- define "shelfops.imagePullSecrets" -}}
{{- with .Values.image.pullSecrets -}}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Pod-level security context: non-root, RuntimeDefault seccomp.
*/}}
{{- define "shelfops.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ . }}
runAsGroup: {{ . }}
fsGroup: {{ . }}
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/*
Container-level security context: read-only root filesystem, no privilege escalation, no capabilities.
*/}}
{{- define "shelfops.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ . }}
runAsGroup: {{ . }}
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/*
Redis host:port for Feast's connection string and the URL for SHELFOPS_REDIS_URL.
*/}}
{{- define "shelfops.redisUrl" -}}
{{- if eq .Values.redis.mode "external" }}
{{- required "redis.external.url is required when redis.mode is external" .Values.redis.external.url }}
{{- else }}
{{- printf "redis://%s-redis:6379/0" (include "shelfops.fullname" .) }}
{{- end }}
{{- end }}

{{- define "shelfops.redisHostPort" -}}
{{- $u := urlParse (include "shelfops.redisUrl" .) }}
{{- if contains ":" $u.host }}{{ $u.host }}{{ else }}{{ printf "%s:6379" $u.host }}{{ end }}
{{- end }}

{{- define "shelfops.redisTls" -}}
{{- if hasPrefix "rediss://" (include "shelfops.redisUrl" .) }}true{{ else }}false{{ end }}
{{- end }}

{{/*
Environment variable with the Redis password from the existing Secret (nothing without auth).
*/}}
{{- define "shelfops.redisPasswordEnv" -}}
{{- if .Values.redis.auth.existingSecret -}}
- name: SHELFOPS_REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .Values.redis.auth.existingSecret }}
      key: {{ .Values.redis.auth.existingSecretKey }}
{{- end }}
{{- end }}

{{/*
Environment shared by the feature server and the materialization job.
*/}}
{{- define "shelfops.toolsEnv" -}}
- name: SHELFOPS_PROFILE
  value: cluster
- name: SHELFOPS_REDIS_URL
  value: {{ include "shelfops.redisUrl" . | quote }}
- name: FEAST_FS_YAML_FILE_PATH
  value: /etc/shelfops/feast/feature_store.yaml
- name: HOME
  value: /tmp
- name: SHELFOPS_HOME
  value: {{ .Values.home.mountPath | quote }}
- name: SHELFOPS_FEAST_REGISTRY
  value: {{ .Values.featureStore.registry.path | quote }}
{{- with include "shelfops.redisPasswordEnv" . }}
{{ . }}
{{- end }}
{{- end }}

{{/*
Volumes and mounts shared by the feature server and the materialization job.
*/}}
{{- define "shelfops.toolsVolumes" -}}
- name: feast-config
  configMap:
    name: {{ include "shelfops.fullname" . }}-feast
- name: tmp
  emptyDir: {}
- name: home
{{- if .Values.home.persistence.enabled }}
  persistentVolumeClaim:
    claimName: {{ include "shelfops.homeClaim" . }}
{{- else }}
  emptyDir: {}
{{- end }}
{{- end }}

{{/*
Name of the PersistentVolumeClaim holding the ShelfOps home.
*/}}
{{- define "shelfops.homeClaim" -}}
{{- .Values.home.persistence.existingClaim | default (printf "%s-home" (include "shelfops.fullname" .)) }}
{{- end }}

{{- define "shelfops.toolsVolumeMounts" -}}
- name: feast-config
  mountPath: /etc/shelfops/feast
  readOnly: true
- name: tmp
  mountPath: /tmp
- name: home
  mountPath: {{ .Values.home.mountPath }}
{{- end }}

{{/*
In-cluster URL of the payload-logger sink, the target of every InferenceService's KServe logger.
*/}}
{{- define "shelfops.payloadSinkUrl" -}}
{{- printf "http://%s-payload-sink.%s.svc.cluster.local:%v" (include "shelfops.fullname" .) .Release.Namespace .Values.payloadSink.port -}}
{{- end }}
