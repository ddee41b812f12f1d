{{- /*
Kubernetes limits Service names (and, by convention here, every name the
chart makes) to 63 characters. A name that fits is used as it is, so
upgrading a release never renames its objects; a longer one keeps a
prefix and gets 8 hex characters of a hash of the whole untruncated name,
so two long release names that differ only at the end stay apart.
*/ -}}
{{- define "dbfleet.fitName" -}}
{{- $name := index . 0 -}}
{{- $suffix := index . 1 -}}
{{- $full := ternary $name (printf "%s-%s" $name $suffix) (eq $suffix "") -}}
{{- if le (len $full) 63 -}}
{{- $full -}}
{{- else -}}
{{- $tail := ternary "" (printf "-%s" $suffix) (eq $suffix "") -}}
{{- $keep := int (sub 63 (add 9 (len $tail))) -}}
{{- printf "%s-%s%s" (trunc $keep $name | trimSuffix "-") (sha256sum $name | trunc 8) $tail -}}
{{- end -}}
{{- end -}}

{{- define "dbfleet.fullname" -}}
{{- $name := ternary .Release.Name (printf "%s-%s" .Release.Name .Chart.Name) (contains .Chart.Name .Release.Name) -}}
{{- include "dbfleet.fitName" (list $name "") -}}
{{- end -}}

{{- /* <fullname>-<suffix>, within 63 characters (above). */ -}}
{{- define "dbfleet.name" -}}
{{- include "dbfleet.fitName" (list (include "dbfleet.fullname" (index . 0)) (index . 1)) -}}
{{- end -}}

{{- define "dbfleet.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "dbfleet.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- /* The controller's and the façade's pods: the selector labels plus the component. */ -}}
{{- define "dbfleet.controllerSelectorLabels" -}}
{{ include "dbfleet.selectorLabels" . }}
app.kubernetes.io/component: controller
{{- end -}}

{{- define "dbfleet.apiSelectorLabels" -}}
{{ include "dbfleet.selectorLabels" . }}
app.kubernetes.io/component: api
{{- end -}}

{{- /* Each process runs under a ServiceAccount of its own, so each holds only the rights it uses. */ -}}
{{- define "dbfleet.controllerServiceAccountName" -}}
{{- if .Values.controller.serviceAccount.create -}}
{{- default (include "dbfleet.name" (list . "controller")) .Values.controller.serviceAccount.name -}}
{{- else -}}
{{- required "controller.serviceAccount.name is required when controller.serviceAccount.create is false" .Values.controller.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "dbfleet.apiServiceAccountName" -}}
{{- if .Values.api.serviceAccount.create -}}
{{- default (include "dbfleet.name" (list . "api")) .Values.api.serviceAccount.name -}}
{{- else -}}
{{- required "api.serviceAccount.name is required when api.serviceAccount.create is false" .Values.api.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- /*
The Lease only its holder runs the controllers under. The controller names
its shard Leases <lease>-shard-<n> (n < 64): the Lease is cut so that the
longest of them fits 63 characters too.
*/ -}}
{{- define "dbfleet.leaseName" -}}
{{- $fullname := include "dbfleet.fullname" . -}}
{{- $shard := include "dbfleet.fitName" (list $fullname "shard-63") -}}
{{- trimSuffix "-shard-63" $shard -}}
{{- end -}}

{{- /*
A component's scheduling: (list $ "controller") or (list $ "api").
nodeSelector, tolerations and affinity default to the shared top-level
keys of earlier versions; a spread constraint without a labelSelector
selects this component's pods of the same revision (pod-template-hash), so
that a rolling update's old pods do not skew it.
*/ -}}
{{- define "dbfleet.scheduling" -}}
{{- $root := index . 0 -}}
{{- $component := index . 1 -}}
{{- $values := index $root.Values $component -}}
{{- with $values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with $values.nodeSelector | default $root.Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $values.tolerations | default $root.Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $values.affinity | default $root.Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $values.topologySpreadConstraints }}
{{- $selector := include (printf "dbfleet.%sSelectorLabels" $component) $root | fromYaml }}
topologySpreadConstraints:
  {{- range . }}
  {{- $constraint := deepCopy . }}
  {{- if not (hasKey $constraint "labelSelector") }}
  {{- $_ := set $constraint "labelSelector" (dict "matchLabels" $selector) }}
  {{- if not (hasKey $constraint "matchLabelKeys") }}
  {{- $_ := set $constraint "matchLabelKeys" (list "pod-template-hash") }}
  {{- end }}
  {{- end }}
  - {{ toYaml $constraint | nindent 4 | trim }}
  {{- end }}
{{- end }}
{{- end -}}

{{- define "dbfleet.apiNamespace" -}}
{{- default .Release.Namespace .Values.api.namespace -}}
{{- end -}}

{{- define "dbfleet.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- /* Values of earlier versions of this chart that no longer mean anything: refuse them rather than ignore them. */ -}}
{{- define "dbfleet.checkValues" -}}
{{- if hasKey .Values "replicaCount" -}}
{{- fail "replicaCount is gone: the controller and the façade are separate Deployments; set controller.replicas and api.replicas" -}}
{{- end -}}
{{- if hasKey .Values "serviceAccount" -}}
{{- fail "serviceAccount is gone: the controller and the façade have a ServiceAccount each; set controller.serviceAccount and api.serviceAccount" -}}
{{- end -}}
{{- end -}}

{{- define "dbfleet.testSelectorLabels" -}}
{{ include "dbfleet.selectorLabels" . }}
app.kubernetes.io/component: test
{{- end -}}

{{- /* The egress rules both processes share (networkpolicy.yaml). */ -}}
{{- define "dbfleet.networkPolicyEgress" -}}
{{- $egress := .Values.networkPolicy.egress -}}
# The Kubernetes API.
- ports:
    {{- range $egress.kubernetesApi.ports }}
    - {port: {{ . }}, protocol: TCP}
    {{- end }}
  {{- with $egress.kubernetesApi.cidrs }}
  to:
    {{- range . }}
    - ipBlock: {cidr: {{ . | quote }}}
    {{- end }}
  {{- end }}
# DNS, to resolve database host names.
- ports:
    - {port: 53, protocol: UDP}
    - {port: 53, protocol: TCP}
  {{- with $egress.dns.to }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- range $egress.databases }}
# Databases: {{ .cidr }}.
- ports:
    {{- range .ports }}
    - {port: {{ . }}, protocol: TCP}
    {{- end }}
  to:
    - ipBlock: {cidr: {{ .cidr | quote }}}
{{- end }}
{{- end -}}
