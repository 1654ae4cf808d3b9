{{/* The release's full name, used for every object. */}}
{{- define "millrace.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "millrace.labels" -}}
app.kubernetes.io/name: millrace
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "millrace.selectorLabels" -}}
app.kubernetes.io/name: millrace
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: manager
{{- end -}}

{{- define "millrace.serviceAccountName" -}}
{{- default (include "millrace.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "millrace.taskTokenSecret" -}}
{{- default (printf "%s-task-token" (include "millrace.fullname" .)) .Values.taskToken.existingSecret -}}
{{- end -}}

{{- define "millrace.image" -}}
{{- printf "%s:%s" .repository (default .appVersion .tag) -}}
{{- end -}}

{{- define "millrace.gatewaySelectorLabels" -}}
app.kubernetes.io/name: millrace
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: gateway
{{- end -}}

{{/* Labels the manager puts on every Consumer pod (internal/consumer.Render). */}}
{{- define "millrace.consumerPodLabels" -}}
app.kubernetes.io/managed-by: millrace
app.kubernetes.io/component: consumer
{{- end -}}

{{/* The scrapers networkPolicy.metrics selects, as a NetworkPolicyPeer. */}}
{{- define "millrace.metricsPeer" -}}
- namespaceSelector:
    {{- toYaml .Values.networkPolicy.metrics.namespaceSelector | nindent 4 }}
  podSelector:
    {{- toYaml .Values.networkPolicy.metrics.podSelector | nindent 4 }}
{{- end -}}

{{/*
Outbound rules of the manager and the gateway: DNS, the API server, HTTPS (SQS and STS), the EKS
Pod Identity agent, the port of aws.endpoint, and networkPolicy.egress.extra. Everything else,
the instance metadata service (169.254.169.254) included, is refused.
*/}}
{{- define "millrace.egressRules" -}}
{{- $e := .Values.networkPolicy.egress -}}
- ports:
    - {port: 53, protocol: UDP}
    - {port: 53, protocol: TCP}
# HTTPS (SQS, STS) and the API server.
- ports:
    - {port: 443, protocol: TCP}
    {{- range $e.apiServerPorts }}
    {{- if ne (toString .) "443" }}
    - {port: {{ . }}, protocol: TCP}
    {{- end }}
    {{- end }}
  to:
    - ipBlock:
        cidr: 0.0.0.0/0
    - ipBlock:
        cidr: ::/0
# The EKS Pod Identity agent on the node.
- ports:
    - {port: 80, protocol: TCP}
  to:
    - ipBlock:
        cidr: 169.254.170.23/32
    - ipBlock:
        cidr: fd00:ec2::23/128
{{- with .Values.aws.endpoint }}
{{- $u := urlParse . }}
{{- $port := (regexFind ":[0-9]+$" $u.host | trimPrefix ":") | default (ternary "443" "80" (eq $u.scheme "https")) }}
# aws.endpoint
- ports:
    - {port: {{ $port }}, protocol: TCP}
{{- end }}
{{- if $e.instanceMetadata }}
# networkPolicy.egress.instanceMetadata: the node's IAM role.
- ports:
    - {port: 80, protocol: TCP}
  to:
    - ipBlock:
        cidr: 169.254.169.254/32
{{- end }}
{{- with $e.extra }}
{{ toYaml . }}
{{- end }}
{{- end -}}
