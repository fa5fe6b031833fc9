{{/* Names and labels. */}}
{{- define "ktf-worker.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "ktf-worker.fullname" -}}
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

{{- define "ktf-worker.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "ktf-worker.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ktf-worker.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: worker
{{- end -}}

{{/* Labels without the component, for objects that are not worker pods (the topics Job). */}}
{{- define "ktf-worker.commonLabels" -}}
helm.sh/chart: {{ include "ktf-worker.chart" . }}
app.kubernetes.io/name: {{ include "ktf-worker.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kafka-task-framework
{{- end -}}

{{- define "ktf-worker.labels" -}}
helm.sh/chart: {{ include "ktf-worker.chart" . }}
{{ include "ktf-worker.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kafka-task-framework
{{- end -}}

{{- define "ktf-worker.headlessServiceName" -}}
{{- printf "%s-headless" (include "ktf-worker.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "ktf-worker.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "ktf-worker.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* repository:tag, repository@digest, or repository:tag@digest when both are given. */}}
{{- define "ktf-worker.image" -}}
{{- $img := .Values.image -}}
{{- if and $img.digest $img.tag -}}
{{- printf "%s:%s@%s" $img.repository $img.tag $img.digest -}}
{{- else if $img.digest -}}
{{- printf "%s@%s" $img.repository $img.digest -}}
{{- else -}}
{{- printf "%s:%s" $img.repository (default .Chart.AppVersion $img.tag) -}}
{{- end -}}
{{- end -}}

{{/* Task topics only (never retry tiers): what autoscaling measures. */}}
{{- define "ktf-worker.taskTopicNames" -}}
{{- $names := list -}}
{{- range .Values.taskTopics -}}
{{- $names = append $names .name -}}
{{- end -}}
{{- join "," $names -}}
{{- end -}}

{{/* Topics a pod consumes: every task topic plus each of its retry tiers. */}}
{{- define "ktf-worker.consumedTopicCount" -}}
{{- $n := 0 -}}
{{- range .Values.taskTopics -}}
{{- $n = add $n 1 (len (default list .retryTiers)) -}}
{{- end -}}
{{- $n -}}
{{- end -}}

{{/* The replica cap: a member beyond the partitions of a task topic gets none of it. */}}
{{- define "ktf-worker.maxReplicas" -}}
{{- $max := int .Values.autoscaling.maxReplicas -}}
{{- if .Values.topics.ensure -}}
{{- min $max (int .Values.topics.partitions) -}}
{{- else -}}
{{- $max -}}
{{- end -}}
{{- end -}}

{{/* Fewest pods that run: they own every partition between them. */}}
{{- define "ktf-worker.minPods" -}}
{{- if eq .Values.autoscaling.mode "none" -}}
{{- max 1 (int .Values.replicaCount) -}}
{{- else -}}
{{- max 1 (int .Values.autoscaling.minReplicas) -}}
{{- end -}}
{{- end -}}

{{/*
Most partitions one pod may own: sizing.maxPartitionsPerPod, or every partition the
group consumes (topics.partitions x task topics and their tiers) over the fewest pods.
*/}}
{{- define "ktf-worker.partitionsPerPod" -}}
{{- if gt (int .Values.sizing.maxPartitionsPerPod) 0 -}}
{{- int .Values.sizing.maxPartitionsPerPod -}}
{{- else -}}
{{- $total := mul (int .Values.topics.partitions) (int (include "ktf-worker.consumedTopicCount" .)) -}}
{{- $pods := int (include "ktf-worker.minPods" .) -}}
{{- div (add $total (sub $pods 1)) $pods -}}
{{- end -}}
{{- end -}}

{{/* The one place the drain timeout and the grace period are derived. */}}
{{- define "ktf-worker.terminationGracePeriodSeconds" -}}
{{- add (int .Values.drainTimeoutSeconds) (int .Values.shutdownMarginSeconds) -}}
{{- end -}}

{{/* PLAINTEXT / SSL / SASL_PLAINTEXT / SASL_SSL from the auth and tls switches. */}}
{{- define "ktf-worker.securityProtocol" -}}
{{- if .Values.kafka.securityProtocol -}}
{{- .Values.kafka.securityProtocol -}}
{{- else if and .Values.auth.sasl.enabled .Values.tls.enabled -}}
SASL_SSL
{{- else if .Values.auth.sasl.enabled -}}
SASL_PLAINTEXT
{{- else if .Values.tls.enabled -}}
SSL
{{- else -}}
PLAINTEXT
{{- end -}}
{{- end -}}

{{/*
Worker processes per pod: worker.processes, or for "auto" the CPU limit rounded up
(what `ktf worker --processes auto` reads from the cgroup quota in the container).
*/}}
{{- define "ktf-worker.processes" -}}
{{- $p := toString .Values.worker.processes -}}
{{- if eq $p "auto" -}}
{{- $cpu := "" -}}
{{- with .Values.resources.limits -}}{{- $cpu = toString (default "" .cpu) -}}{{- end -}}
{{- if not $cpu -}}
{{- fail "worker.processes=auto needs resources.limits.cpu (the process count and the memory sizing follow it); or set worker.processes to a number" -}}
{{- end -}}
{{- if hasSuffix "m" $cpu -}}
{{- div (add (atoi (trimSuffix "m" $cpu)) 999) 1000 | max 1 -}}
{{- else -}}
{{- ceil (float64 $cpu) | int | max 1 -}}
{{- end -}}
{{- else -}}
{{- int $p -}}
{{- end -}}
{{- end -}}

{{/*
Memory request in MiB, sized for the librdkafka prefetch plus the framework's buffers of
every worker process, and the supervisor when there are several (formula in values.yaml
and docs/kubernetes.md).
*/}}
{{- define "ktf-worker.memoryMiB" -}}
{{- $s := .Values.sizing -}}
{{- $w := .Values.worker -}}
{{- $mib := 1048576 -}}
{{- $n := int64 (include "ktf-worker.processes" .) -}}
{{- $queue := div (int64 $w.queuedMaxKbytes) 1024 -}}
{{- $parts := int64 (include "ktf-worker.partitionsPerPod" .) -}}
{{- $fetch := div (mul $parts (int64 $w.fetchMaxBytesPerPartition)) $mib -}}
{{- $buffers := div (mul (int64 $w.maxBuffered) (int64 $s.avgRecordBytes)) $mib -}}
{{- $supervisor := ternary (int64 (default 0 $s.supervisorMiB)) 0 (gt $n 1) -}}
{{- $sum := add (mul $n (add (int64 $s.baseMiB) $queue $buffers)) $fetch $supervisor -}}
{{- div (mul $sum (add 100 (int64 $s.headroomPercent))) 100 -}}
{{- end -}}

{{- define "ktf-worker.resources" -}}
{{- $res := deepCopy (default dict .Values.resources) -}}
{{- $requests := default dict $res.requests -}}
{{- $limits := default dict $res.limits -}}
{{- if not (hasKey $requests "memory") -}}
{{- $_ := set $requests "memory" (printf "%sMi" (include "ktf-worker.memoryMiB" .)) -}}
{{- end -}}
{{- if not (hasKey $limits "memory") -}}
{{- $_ := set $limits "memory" (get $requests "memory") -}}
{{- end -}}
{{- $_ := set $res "requests" $requests -}}
{{- $_ := set $res "limits" $limits -}}
{{- toYaml $res -}}
{{- end -}}

{{/* Non-secret KTF_* settings, shared by the ConfigMap and the topics Job. */}}
{{- define "ktf-worker.configData" -}}
KTF_BOOTSTRAP_SERVERS: {{ .Values.kafka.bootstrapServers | quote }}
KTF_GROUP_ID: {{ .Values.kafka.groupId | quote }}
KTF_GROUP_PROTOCOL: {{ .Values.kafka.groupProtocol | quote }}
KTF_SESSION_TIMEOUT_MS: {{ .Values.kafka.sessionTimeoutMs | int | quote }}
KTF_SECURITY_PROTOCOL: {{ include "ktf-worker.securityProtocol" . | quote }}
{{- if .Values.auth.sasl.enabled }}
KTF_SASL_MECHANISM: {{ .Values.auth.sasl.mechanism | quote }}
{{- end }}
{{- if .Values.tls.enabled }}
KTF_SSL_CA_LOCATION: {{ printf "%s/%s" .Values.tls.mountPath .Values.tls.caKey | quote }}
{{- if .Values.tls.certKey }}
KTF_SSL_CERTIFICATE_LOCATION: {{ printf "%s/%s" .Values.tls.mountPath .Values.tls.certKey | quote }}
KTF_SSL_KEY_LOCATION: {{ printf "%s/%s" .Values.tls.mountPath .Values.tls.keyKey | quote }}
{{- end }}
{{- end }}
KTF_HANDLERS: {{ .Values.handlers | quote }}
KTF_SCHEMAS_DIR: "/app/schemas"
KTF_MAX_IN_FLIGHT: {{ .Values.worker.maxInFlight | int | quote }}
KTF_MAX_BUFFERED: {{ .Values.worker.maxBuffered | int | quote }}
KTF_QUEUED_MAX_KBYTES: {{ .Values.worker.queuedMaxKbytes | int | quote }}
KTF_FETCH_MAX_BYTES_PER_PARTITION: {{ .Values.worker.fetchMaxBytesPerPartition | int | quote }}
KTF_LOG_FORMAT: {{ .Values.worker.logFormat | quote }}
KTF_LOG_LEVEL: {{ .Values.worker.logLevel | quote }}
{{- range $key, $value := .Values.worker.extraConfig }}
{{ $key }}: {{ $value | toString | quote }}
{{- end }}
{{- end -}}

{{/* Credentials: environment variables read from existing Secrets, never literals. */}}
{{- define "ktf-worker.secretEnv" -}}
{{- if .Values.auth.sasl.enabled }}
- name: KTF_SASL_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ .Values.auth.sasl.existingSecret | quote }}
      key: {{ .Values.auth.sasl.usernameKey | quote }}
- name: KTF_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .Values.auth.sasl.existingSecret | quote }}
      key: {{ .Values.auth.sasl.passwordKey | quote }}
{{- end }}
{{- if and .Values.tls.enabled .Values.tls.keyPasswordKey }}
- name: KTF_SSL_KEY_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .Values.tls.existingSecret | quote }}
      key: {{ .Values.tls.keyPasswordKey | quote }}
{{- end }}
{{- end -}}

{{- define "ktf-worker.tlsVolume" -}}
{{- if .Values.tls.enabled }}
- name: kafka-tls
  secret:
    secretName: {{ .Values.tls.existingSecret | quote }}
    defaultMode: 0440
{{- end }}
{{- end -}}

{{- define "ktf-worker.tlsVolumeMount" -}}
{{- if .Values.tls.enabled }}
- name: kafka-tls
  mountPath: {{ .Values.tls.mountPath | quote }}
  readOnly: true
{{- end }}
{{- end -}}

{{/* Fail rendering early, with one line naming the value, on combinations the schema cannot express. */}}
{{- define "ktf-worker.validate" -}}
{{- if and .Values.auth.sasl.enabled (not .Values.auth.sasl.existingSecret) -}}
{{- fail "auth.sasl.existingSecret must name a Secret when auth.sasl.enabled is true" -}}
{{- end -}}
{{- if and .Values.tls.enabled (not .Values.tls.existingSecret) -}}
{{- fail "tls.existingSecret must name a Secret when tls.enabled is true" -}}
{{- end -}}
{{- if and .Values.tls.keyPasswordKey (not .Values.tls.certKey) -}}
{{- fail "tls.keyPasswordKey is set but tls.certKey is not: a key password needs a client key (tls.certKey and tls.keyKey)" -}}
{{- end -}}
{{- if and .Values.tls.certKey (not .Values.tls.keyKey) -}}
{{- fail "tls.keyKey must be set when tls.certKey is set (mutual TLS needs both)" -}}
{{- end -}}
{{- if gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas) -}}
{{- fail "autoscaling.minReplicas must not exceed autoscaling.maxReplicas" -}}
{{- end -}}
{{- end -}}
