{{- define "kubeiam.labels" -}}
app.kubernetes.io/name: kubeiam
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "kubeiam.selector" -}}
app.kubernetes.io/name: kubeiam
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "kubeiam.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "kubeiam.clusterID" -}}
{{- required "clusterID is required: the id clients pass to `kubeiam token -i` (--set clusterID=...)" .Values.clusterID -}}
{{- end -}}

{{/* The server's container security: the same as `kubeiam init --static-pod` writes. */}}
{{- define "kubeiam.serverSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.runAsUser }}
runAsGroup: {{ .Values.runAsGroup }}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}
