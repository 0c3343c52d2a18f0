{{/* Names and labels shared by every template of the chart. */}}

{{- define "kubeflowlite.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kubeflowlite.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "kubeflowlite.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "kubeflowlite.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "kubeflowlite.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kubeflowlite.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "kubeflowlite.labels" -}}
{{ include "kubeflowlite.selectorLabels" . }}
app.kubernetes.io/part-of: kubeflowlite
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{- define "kubeflowlite.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kubeflowlite.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "kubeflowlite.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
Rules for the objects the operator works with in the namespaces it watches:
its own resources, the task Pods and their logs, XCom ConfigMaps and Events.
(The operator runs kopf standalone: no peering objects.)
*/}}
{{- define "kubeflowlite.namespacedRules" -}}
- apiGroups: ["kubeflowlite.io"]
  resources: ["dags", "dagruns"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
- apiGroups: ["kubeflowlite.io"]
  resources: ["dags/status", "dagruns/status"]
  verbs: ["get", "patch", "update"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["pods/log"]
  verbs: ["get"]
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
{{- if .Values.rbac.readConnectionSecrets }}
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch"]
{{- end }}
- apiGroups: ["", "events.k8s.io"]
  resources: ["events"]
  verbs: ["get", "list", "watch", "create", "patch"]
{{- end }}

{{/*
Cluster-wide reads kopf needs whatever the namespace scope: it watches CRDs and
namespaces to follow resources and namespaces that appear at runtime.
*/}}
{{- define "kubeflowlite.clusterRules" -}}
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["get", "list", "watch"]
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["get", "list", "watch"]
{{- end }}

{{- define "kubeflowlite.leaseName" -}}
{{- default (include "kubeflowlite.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}
