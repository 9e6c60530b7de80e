{{/*
Names. Every object is named after the release ("<release>-gridspawner-…", or
fullnameOverride), so two releases can share a namespace.
*/}}
{{- define "gridspawner.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "gridspawner.hub.fullname" -}}{{ include "gridspawner.fullname" . }}-hub{{- end -}}
{{- define "gridspawner.hub.configName" -}}{{ include "gridspawner.fullname" . }}-hub-config{{- end -}}
{{- define "gridspawner.hub.secretName" -}}{{ include "gridspawner.fullname" . }}-hub-secret{{- end -}}
{{- define "gridspawner.hub.pvcName" -}}{{ include "gridspawner.fullname" . }}-hub-db{{- end -}}
{{- define "gridspawner.proxy.fullname" -}}{{ include "gridspawner.fullname" . }}-proxy{{- end -}}
{{- define "gridspawner.proxy.publicName" -}}{{ include "gridspawner.fullname" . }}-proxy-public{{- end -}}
{{- define "gridspawner.proxy.apiName" -}}{{ include "gridspawner.fullname" . }}-proxy-api{{- end -}}

{{- define "gridspawner.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "gridspawner.hub.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
Labels. `app: jupyterhub`, `release` and `component` (hub / proxy / singleuser-server) are
the labels zero-to-jupyterhub's NetworkPolicies and tooling select on; the
app.kubernetes.io/* ones are the Kubernetes recommended labels. Call with
(dict "root" $ "component" "hub").
*/}}
{{- define "gridspawner.selectorLabels" -}}
app: jupyterhub
release: {{ .root.Release.Name }}
component: {{ .component }}
{{- end -}}

{{- define "gridspawner.labels" -}}
{{ include "gridspawner.selectorLabels" . }}
heritage: {{ .root.Release.Service }}
chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "gridspawner.image" -}}
{{- $tag := .image.tag | default .root.Chart.AppVersion -}}
{{- if .image.digest -}}
{{ .image.repository }}@{{ .image.digest }}
{{- else -}}
{{ .image.repository }}:{{ $tag }}
{{- end -}}
{{- end -}}

{{/*
The namespaces the Kubernetes backends start servers in: each kubernetes backend's
`namespace` setting, or the release namespace when it has none. Returned as a JSON list
(use `include … | fromJsonArray`). Roles and the single-user NetworkPolicy are made in each.
*/}}
{{- define "gridspawner.kubernetesNamespaces" -}}
{{- $namespaces := list -}}
{{- range $name, $backend := (include "gridspawner.settings" . | fromJson).backends -}}
{{- if eq (toString $backend.kind) "kubernetes" -}}
{{- $namespaces = append $namespaces (default $.Release.Namespace $backend.namespace) -}}
{{- end -}}
{{- end -}}
{{- $namespaces | uniq | sortAlpha | toJson -}}
{{- end -}}

{{/* The hub's URL inside the cluster, as single-user servers and the proxy reach it. */}}
{{- define "gridspawner.hub.url" -}}
http://{{ include "gridspawner.hub.fullname" . }}.{{ .Release.Namespace }}.svc:{{ .Values.hub.service.port }}
{{- end -}}

{{/* Does any kubernetes backend count pods of all namespaces? → "true" or "" */}}
{{- define "gridspawner.anyCapacityAllNamespaces" -}}
{{- range $name, $backend := (include "gridspawner.settings" . | fromJson).backends -}}
{{- if and (eq (toString $backend.kind) "kubernetes") $backend.capacity_all_namespaces -}}true{{- end -}}
{{- end -}}
{{- end -}}

{{/*
The gridspawner settings the hub gets (as JSON): the `gridspawner:` values, with
- the default catalog when no backend is given (one Kubernetes backend "cluster" in the
  release namespace, CPU only, and the image "minimal"), and
- a check that relay_ports an admin gives an ssh backend lie inside hub.tunnelPorts,
- hub_id defaulting to "<namespace>/<release>" (crash recovery: docs/admin/crash-recovery.md),
- `release: <release>` added to every Kubernetes backend's extra_labels, so this release's
  NetworkPolicies (and zero-to-jupyterhub's, which select app/release/component) match the
  servers' pods;
- for data mounts (`storage`): key_dir defaulting to /srv/jupyterhub/ssh-keys (the hub's
  persistent volume) when an SSH storage host uses hub-managed keys, and a check that every
  STS admin key variable (access_key_env / secret_key_env) is given to the hub.
*/}}
{{- define "gridspawner.settings" -}}
{{- $grid := deepCopy .Values.gridspawner -}}
{{- if not $grid.hub_id -}}
{{- /* the hub's name in what it leaves on hosts and clusters: stable across upgrades */ -}}
{{- $_ := set $grid "hub_id" (printf "%s/%s" .Release.Namespace .Release.Name) -}}
{{- end -}}
{{- if not $grid.backends -}}
{{- if $grid.images -}}
{{- fail "gridspawner.images is set but gridspawner.backends is empty: give the backends the images are for" -}}
{{- end -}}
{{- $_ := set $grid "backends" (dict "cluster" (dict "kind" "kubernetes" "display_name" "Kubernetes cluster" "description" "Servers run as pods in this cluster.")) -}}
{{- $_ := set $grid "images" (dict "minimal" (dict "display_name" "Minimal Python" "description" "Jupyter's base-notebook image: Python and JupyterLab." "kubernetes" (dict "image" "quay.io/jupyter/base-notebook:2025-01-06"))) -}}
{{- else if not $grid.images -}}
{{- fail "gridspawner.backends is set but gridspawner.images is empty: add at least one image with an entry for your backends' kind" -}}
{{- end -}}
{{- range $name, $backend := $grid.backends -}}
{{- if eq (toString $backend.kind) "kubernetes" -}}
{{- $labels := (get $backend "extra_labels") | default dict -}}
{{- $_ := set $labels "release" $.Release.Name -}}
{{- $_ := set $backend "extra_labels" $labels -}}
{{- end -}}
{{- end -}}
{{- range $name, $backend := $grid.backends -}}
{{- if and (eq (toString $backend.kind) "ssh") $backend.relay_ports -}}
{{- /* relays the admin placed must stay where the NetworkPolicy lets the proxy in */ -}}
{{- $range := $backend.relay_ports -}}
{{- if kindIs "string" $range -}}{{- $range = regexSplit "-" (nospace $range) 2 -}}{{- end -}}
{{- $first := int (index $range 0) -}}
{{- $last := int (index $range 1) -}}
{{- $tp := $.Values.hub.tunnelPorts -}}
{{- if or (lt $first (int $tp.start)) (gt $last (int $tp.end)) -}}
{{- fail (printf "gridspawner.backends.%s.relay_ports (%d-%d) is outside hub.tunnelPorts (%d-%d): the proxy could not reach those relays; leave relay_ports unset to use hub.tunnelPorts" $name $first $last (int $tp.start) (int $tp.end)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- with $grid.storage -}}
{{- $storage := . -}}
{{- /* SSH storage with hub-managed keys (auth "key", the default): keep them on the hub's
       persistent volume unless the admin chose a directory there */ -}}
{{- if and (not $storage.key_dir) (eq (include "gridspawner.storage.usesKeys" $storage) "true") -}}
{{- $_ := set $storage "key_dir" (include "gridspawner.hub.sshKeyDir" $) -}}
{{- end -}}
{{- /* admin S3 keys are read from environment variables: they must reach the hub */ -}}
{{- $envNames := keys ($.Values.existingSecret.env | default dict) -}}
{{- if not $.Values.existingSecret.name -}}{{- $envNames = list -}}{{- end -}}
{{- range $.Values.hub.extraEnv -}}{{- $envNames = append $envNames .name -}}{{- end -}}
{{- range $name, $ep := $storage.s3 -}}
{{- $sts := $ep.sts | default dict -}}
{{- range $field := list "access_key_env" "secret_key_env" -}}
{{- $var := get $sts $field -}}
{{- if and $var (not (has $var $envNames)) -}}
{{- fail (printf "gridspawner.storage.s3.%s.sts.%s names the environment variable %s, but the hub does not get it: map it to a key of your Secret in existingSecret.env (with existingSecret.name), or add it to hub.extraEnv" $name $field $var) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $grid | toJson -}}
{{- end -}}

{{/* Where the hub keeps per-user SSH keys for SSH storage by default: on its persistent volume. */}}
{{- define "gridspawner.hub.sshKeyDir" -}}/srv/jupyterhub/ssh-keys{{- end -}}

{{/* Does a storage block (gridspawner.storage) have an SSH storage host with auth "key"
(the default auth)? → "true" or "false" */}}
{{- define "gridspawner.storage.usesKeys" -}}
{{- $uses := false -}}
{{- range $name, $host := .ssh -}}
{{- $auth := $host.auth | default (list "key") -}}
{{- if kindIs "string" $auth -}}{{- $auth = list $auth -}}{{- end -}}
{{- if has "key" $auth -}}{{- $uses = true -}}{{- end -}}
{{- end -}}
{{- $uses -}}
{{- end -}}

{{/* Does the hub need a persistent /srv/jupyterhub? SQLite on a volume, or hub-managed SSH
keys (gridspawner.storage.key_dir, which the schema keeps under /srv/jupyterhub/). → "true" or "" */}}
{{- define "gridspawner.hub.persistentData" -}}
{{- $storage := (include "gridspawner.settings" . | fromJson).storage | default dict -}}
{{- if or (eq .Values.hub.db.type "sqlite-pvc") $storage.key_dir -}}true{{- end -}}
{{- end -}}

{{/* The port single-user servers listen on in their pods (gridspawner/backends/kubernetes/objects.py: PORT). */}}
{{- define "gridspawner.singleuser.port" -}}8888{{- end -}}
