{{/*
NetworkPolicy peers. Pods of this release are selected by app/release/component; pods in
another namespace (a Kubernetes backend's `namespace`) also by that namespace's
kubernetes.io/metadata.name label (set by Kubernetes on every namespace since 1.22).
*/}}
{{- define "gridspawner.peer" -}}
- podSelector:
    matchLabels:
      {{- include "gridspawner.selectorLabels" (dict "root" .root "component" .component) | nindent 6 }}
  {{- if ne .namespace .root.Release.Namespace }}
  namespaceSelector:
    matchLabels:
      kubernetes.io/metadata.name: {{ .namespace }}
  {{- end }}
{{- end -}}

{{/* single-user server pods of this release in every namespace the Kubernetes backends use */}}
{{- define "gridspawner.singleuserPeers" -}}
{{- range $i, $ns := include "gridspawner.kubernetesNamespaces" . | fromJsonArray }}
{{- if $i }}{{ "\n" }}{{ end }}
{{- include "gridspawner.peer" (dict "root" $ "component" "singleuser-server" "namespace" $ns) }}
{{- end }}
{{- end -}}

{{/* Cluster DNS, wherever it runs (kube-dns, CoreDNS, node-local caches). */}}
{{- define "gridspawner.dnsEgress" -}}
- ports:
    - port: 53
      protocol: UDP
    - port: 53
      protocol: TCP
{{- end -}}

{{/* An egress rule to CIDRs on ports: (dict "cidrs" [...] "ports" [...]) */}}
{{- define "gridspawner.cidrEgress" -}}
{{- if and .cidrs .ports -}}
- to:
    {{- range .cidrs }}
    - ipBlock:
        cidr: {{ . }}
    {{- end }}
  ports:
    {{- range .ports }}
    - port: {{ . }}
      protocol: TCP
    {{- end }}
{{- end }}
{{- end -}}
