{{- define "dbfleet.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
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
{{- default (printf "%s-controller" (include "dbfleet.fullname" .)) .Values.controller.serviceAccount.name -}}
{{- else -}}
{{- required "controller.serviceAccount.name is required when controller.serviceAccount.create is false" .Values.controller.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "dbfleet.apiServiceAccountName" -}}
{{- if .Values.api.serviceAccount.create -}}
{{- default (printf "%s-api" (include "dbfleet.fullname" .)) .Values.api.serviceAccount.name -}}
{{- else -}}
{{- required "api.serviceAccount.name is required when api.serviceAccount.create is false" .Values.api.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- /* The Lease only its holder runs the controllers under. */ -}}
{{- define "dbfleet.leaseName" -}}
{{- include "dbfleet.fullname" . -}}
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
