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

{{/*
  server.workers as `kubeiam server --workers` takes it: a whole number from 1 to 64. Refused
  here, at install, rather than by a pod that crash-loops on its flag.
*/}}
{{- define "kubeiam.workers" -}}
{{- $given := .Values.server.workers -}}
{{- $n := int $given -}}
{{- if or (lt $n 1) (gt $n 64) (ne (toString $n) (toString $given)) -}}
{{- fail (printf "server.workers is %v: give a whole number from 1 to 64 (the server processes sharing the port; docs/server.md \"Workers\")" $given) -}}
{{- end -}}
{{- $n -}}
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

{{/*
  The init container gives these directories to runAsUser: refuse the system directories a
  typo would hand over (kubeadm's /etc/kubernetes holds the cluster's CA key).
*/}}
{{- define "kubeiam.checkHostPaths" -}}
{{- $system := list "/" "/etc" "/etc/kubernetes" "/etc/kubernetes/pki" "/var" "/var/lib" "/srv" "/srv/kubernetes" "/usr" "/root" "/home" "/tmp" -}}
{{- range $path := list .Values.stateDir .Values.generateKubeconfig.hostPath -}}
{{- if and $path (has (trimSuffix "/" $path | default "/") $system) -}}
{{- fail (printf "%s is a system directory: give kubeiam a directory of its own (the init container gives it to UID %v)" $path $.Values.runAsUser) -}}
{{- end -}}
{{- end -}}
{{- end -}}
