#!/usr/bin/env bash
# The floor of benchmarks/cluster_bootstrap.py: what an admin runs by hand, over `docker exec`, to get from two
# fresh debian13-node lab containers (one control plane, one worker) to the cluster that
# `site.yml --tags runtime,cluster,network` builds on them: Debian's containerd and Docker Engine configured as the
# containerd and docker roles configure them, kubeadm/kubelet/kubectl pinned and held from the bundle's repository,
# haproxy on loopback in front of the API server, kubeadm init and join with the roles' settings, and Calico's
# manifest from the bundle with the calico role's settings, applied server-side. It stops when every node is Ready,
# calico-node and Calico's controllers are rolled out, CoreDNS runs and Calico's IP pool exists.
#
# Not replicated: the certificate renewal timer (role kubeadm_certificates) and the admin kubeconfig fetched to the
# controller; the floor runs kubectl on the control-plane node instead.
#
#   cluster_floor.sh CONTROL_PLANE_CONTAINER CONTROL_PLANE_IP WORKER_CONTAINER WORKER_IP
#
# The pins and the bundle's location come from the environment (benchmarks/cluster_bootstrap.py reads them from
# roles/sensorstack/defaults and the bundle's bundle.json): MIRROR, REGISTRY, KUBERNETES_VERSION, PACKAGE_REVISION,
# APT_KEY_SHA256, CALICO_VERSION, CALICO_SHA256, POD_CIDR, SERVICE_CIDR, API_PORT, RESOLVER, HOST_CIDR.
set -euo pipefail

if (($# != 4)); then
  sed -n '2,/^set /p' "$0" | sed '$d' >&2
  exit 2
fi
CP=$1 CP_IP=$2 WORKER=$3 WORKER_IP=$4
SETTINGS=(MIRROR REGISTRY KUBERNETES_VERSION PACKAGE_REVISION APT_KEY_SHA256 CALICO_VERSION CALICO_SHA256 POD_CIDR
  SERVICE_CIDR API_PORT RESOLVER HOST_CIDR)
for name in "${SETTINGS[@]}"; do
  [[ -n ${!name:-} ]] || { echo "cluster_floor.sh: $name is not set" >&2; exit 2; }
done
export "${SETTINGS[@]}" CP_IP
export MINOR=${KUBERNETES_VERSION%.*}

step() { echo "[+${SECONDS}s] $*"; }

# on CONTAINER [NAME ...] <script: run the script on the node with bash, the settings and the named variables in its
# environment. The script travels as an argument, so that no command in it can read the rest of it from stdin.
on() {
  local node=$1 script
  shift
  script=$(cat)
  local environment=()
  for name in "${SETTINGS[@]}" MINOR CP_IP "$@"; do
    environment+=(--env "$name")
  done
  docker exec "${environment[@]}" "$node" bash -euo pipefail -c "$script"
}

# Both nodes: the runtime (roles kubernetes_packages, containerd, docker) and the API load balancer (apiserver_lb).
prepare_node() {
  NODE_IP=$2 on "$1" NODE_IP <<'EOF'
export DEBIAN_FRONTEND=noninteractive
# The bundle's Kubernetes repository of the pinned minor, trusted with its own key, checked against bundle.json.
install -d -m 0755 /etc/apt/keyrings
/usr/lib/apt/apt-helper download-file "$MIRROR/apt/core:/stable:/v$MINOR/deb/Release.key" \
  /etc/apt/keyrings/kubernetes-apt-keyring.asc "SHA256:$APT_KEY_SHA256" >/dev/null
cat >/etc/apt/sources.list.d/kubernetes.sources <<SOURCES
Types: deb
URIs: $MIRROR/apt/core:/stable:/v$MINOR/deb/
Suites: /
Signed-By: /etc/apt/keyrings/kubernetes-apt-keyring.asc
SOURCES

# Docker's settings before its first start, as the docker role writes them.
install -d -m 0755 /etc/docker
cat >/etc/docker/daemon.json <<'JSON'
{
  "exec-opts": ["native.cgroupdriver=systemd"],
  "log-driver": "json-file",
  "log-opts": {"max-file": "5", "max-size": "10m"}
}
JSON

# The bundle's registry mirrors every registry the cluster's images come from (containerd reads these at each pull).
for registry in registry.k8s.io quay.io docker.io; do
  server=https://$registry
  [[ $registry == docker.io ]] && server=https://registry-1.docker.io
  install -d -m 0755 "/etc/containerd/certs.d/$registry"
  cat >"/etc/containerd/certs.d/$registry/hosts.toml" <<TOML
server = "$server"

[host."http://$REGISTRY/v2/$registry"]
  capabilities = ["pull", "resolve"]
  override_path = true
TOML
done

# Pods with dnsPolicy Default (CoreDNS) ask the lab gateway: the node's resolv.conf names Docker's 127.0.0.11.
install -d -m 0755 /etc/kubernetes
echo "nameserver $RESOLVER" >/etc/kubernetes/resolv.conf

apt-get update -qq
apt-get install -y -qq containerd docker.io docker-cli haproxy \
  "kubeadm=$KUBERNETES_VERSION-$PACKAGE_REVISION" "kubelet=$KUBERNETES_VERSION-$PACKAGE_REVISION" \
  "kubectl=$KUBERNETES_VERSION-$PACKAGE_REVISION" >/dev/null
apt-mark hold kubeadm kubelet kubectl >/dev/null
systemctl enable --quiet kubelet

# containerd for the kubelet: its full default config with systemd cgroups, kubeadm's pause image, Calico's CNI
# directory, the mirrors' directory, and no lowering of OOM scores (the node is a container without CAP_SYS_RESOURCE).
pause=$(kubeadm config images list --kubernetes-version "v$KUBERNETES_VERSION" | grep /pause:)
containerd config default | sed \
  -e 's/SystemdCgroup = false/SystemdCgroup = true/' \
  -e "s|sandbox_image = .*|sandbox_image = \"$pause\"|" \
  -e 's|bin_dir = "/usr/lib/cni"|bin_dir = "/opt/cni/bin"|' \
  -e 's/restrict_oom_score_adj = false/restrict_oom_score_adj = true/' \
  -e '/grpc\.v1\.cri"\.registry\]$/,/config_path/s|config_path = ""|config_path = "/etc/containerd/certs.d"|' \
  >/etc/containerd/config.toml
systemctl restart containerd

# The API on loopback of every node, passed through to the control plane's API server once it answers /readyz.
cat >/etc/haproxy/haproxy.cfg <<CFG
global
    log /dev/log local0 warning
    maxconn 4000
    daemon
    user haproxy
    group haproxy

defaults
    mode tcp
    log global
    option tcplog
    option dontlognull
    retries 3
    option redispatch 1
    timeout connect 2s
    timeout client 30m
    timeout server 30m

frontend kube_apiserver
    bind 127.0.0.1:$API_PORT
    default_backend kube_apiserver

backend kube_apiserver
    option httpchk GET /readyz
    http-check expect status 200
    balance roundrobin
    default-server check check-ssl verify none inter 2s fall 3 rise 2
    server apiserver1 $CP_IP:6443
CFG
systemctl reload haproxy
EOF
}

# The control plane: kubeadm init from the configuration the kubeadm_control_plane role renders for the lab.
init_control_plane() {
  on "$CP" <<'EOF'
install -m 0600 /dev/stdin /etc/kubernetes/kubeadm-config.yaml <<YAML
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: $CP_IP
  bindPort: 6443
nodeRegistration:
  criSocket: unix:///run/containerd/containerd.sock
  imagePullPolicy: IfNotPresent
  kubeletExtraArgs:
  - name: node-ip
    value: $CP_IP
  ignorePreflightErrors:
  - SystemVerification
timeouts:
  controlPlaneComponentHealthCheck: 10m0s
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v$KUBERNETES_VERSION
controlPlaneEndpoint: 127.0.0.1:$API_PORT
imageRepository: registry.k8s.io
networking:
  podSubnet: $POD_CIDR
  serviceSubnet: $SERVICE_CIDR
apiServer:
  certSANs:
  - 127.0.0.1
  - $CP_IP
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: systemd
failCgroupV1: false
failSwapOn: false
resolvConf: /etc/kubernetes/resolv.conf
evictionHard:
  memory.available: 100Mi
  nodefs.available: 1Gi
  imagefs.available: 1Gi
  nodefs.inodesFree: 5%
  imagefs.inodesFree: 5%
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
---
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
conntrack:
  maxPerCore: 0
YAML
kubeadm init --config /etc/kubernetes/kubeadm-config.yaml --skip-token-print >/dev/null
install -d -m 0700 /root/.kube
install -m 0600 /etc/kubernetes/admin.conf /root/.kube/config
EOF
}

# The worker: kubeadm join with a fresh 15-minute token, its node-ip and the lab's preflight exception.
join_worker() {
  local endpoint=$1 token=$2 hash=$3
  NODE_IP=$WORKER_IP ENDPOINT=$endpoint TOKEN=$token HASH=$hash on "$WORKER" NODE_IP ENDPOINT TOKEN HASH <<'EOF'
install -m 0600 /dev/stdin /etc/kubernetes/kubeadm-join.yaml <<YAML
apiVersion: kubeadm.k8s.io/v1beta4
kind: JoinConfiguration
discovery:
  bootstrapToken:
    apiServerEndpoint: $ENDPOINT
    token: $TOKEN
    caCertHashes:
    - $HASH
nodeRegistration:
  criSocket: unix:///run/containerd/containerd.sock
  imagePullPolicy: IfNotPresent
  kubeletExtraArgs:
  - name: node-ip
    value: $NODE_IP
  ignorePreflightErrors:
  - SystemVerification
timeouts:
  tlsBootstrap: 10m0s
YAML
kubeadm join --config /etc/kubernetes/kubeadm-join.yaml >/dev/null
rm /etc/kubernetes/kubeadm-join.yaml
EOF
}

# Calico: the bundle's calico-vxlan.yaml, checked against its pin, with the calico role's pool and address settings
# (the pool from the pod network, VXLAN always, /26 blocks, NAT outgoing, node addresses on the lab subnet).
apply_calico() {
  on "$CP" <<'EOF'
install -d -m 0755 /etc/kubernetes/calico
/usr/lib/apt/apt-helper download-file "$MIRROR/files/calico/v$CALICO_VERSION/calico-vxlan.yaml" \
  /etc/kubernetes/calico/calico.yaml "SHA256:$CALICO_SHA256" >/dev/null
sed -e '/- name: CALICO_IPV4POOL_VXLAN$/{n;s/"CrossSubnet"/"Always"/}' \
  -e "s|^\( *\)# - name: CALICO_IPV4POOL_CIDR\$|\1- name: CALICO_IPV4POOL_CIDR\n\1  value: \"$POD_CIDR\"\n\1- name: CALICO_IPV4POOL_BLOCK_SIZE\n\1  value: \"26\"\n\1- name: CALICO_IPV4POOL_NAT_OUTGOING\n\1  value: \"true\"\n\1- name: IP_AUTODETECTION_METHOD\n\1  value: \"cidr=$HOST_CIDR\"|" \
  -e '/^ *#   value: "192.168.0.0\/16"$/d' \
  /etc/kubernetes/calico/calico.yaml | kubectl apply --server-side --field-manager=sensorstack -f - >/dev/null
EOF
}

wait_for_cluster() {
  on "$CP" <<'EOF'
kubectl wait --for=condition=Ready nodes --all --timeout=900s >/dev/null
kubectl -n kube-system rollout status daemonset/calico-node --timeout=900s >/dev/null
kubectl -n kube-system rollout status deployment/calico-kube-controllers --timeout=900s >/dev/null
kubectl -n kube-system rollout status deployment/coredns --timeout=900s >/dev/null
kubectl wait --for=create ippools.crd.projectcalico.org/default-ipv4-ippool --timeout=900s >/dev/null
EOF
}

step "packages, containerd, Docker and haproxy on both nodes"
prepare_node "$CP" "$CP_IP" &
cp_ready=$!
prepare_node "$WORKER" "$WORKER_IP" &
worker_ready=$!
wait "$cp_ready"
step "kubeadm init on $CP"
init_control_plane
wait "$worker_ready"
join_command=$(on "$CP" <<<'kubeadm token create --print-join-command --ttl 15m0s')
read -r _ _ endpoint _ token _ hash <<<"$join_command"
step "kubeadm join of $WORKER and Calico's manifest, at once"
join_worker "$endpoint" "$token" "$hash" &
joined=$!
apply_calico
wait "$joined"
step "waiting for the nodes, calico-node, Calico's controllers, CoreDNS and the IP pool"
wait_for_cluster
step "done"
