package realnode

import "fmt"

// The configuration files of the node's components. Host-specific settings, each needed on this
// kind of machine (cgroup v1, no swap accounting, no CAP_SYS_RESOURCE, no registry):
//   - kubelet: failCgroupV1 false and cgroupDriver cgroupfs (cgroup v1, no systemd), failSwapOn
//     false, makeIPTablesUtilChains false (kube-proxy owns the rules), no resolv.conf (no DNS:
//     pods reach the API server and Services through the environment variables and IPs);
//   - containerd: restrict_oom_score_adj, since runc cannot lower oom_score_adj here and every
//     sandbox would fail with "can't get final child's PID from pipe"; the sandbox image is our
//     own imported pause image; everything under run/ (own socket, root, state, runc root).

func cniConfig(ipamDir string) string {
	return fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": "millrace-realnode",
  "plugins": [
    {"type": "bridge", "bridge": %q, "isGateway": true, "ipMasq": false, "hairpinMode": true,
     "ipam": {"type": "host-local", "dataDir": %q,
              "ranges": [[{"subnet": %q, "rangeStart": "10.244.0.10", "gateway": %q}]],
              "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "loopback"}
  ]
}
`, Bridge, ipamDir, podSubnet, NodeIP)
}

// containerdConfig is for Debian's containerd 1.6 (configuration version 2).
func containerdConfig(dir, socket, cniDir, pauseImage string) string {
	return fmt.Sprintf(`version = 2
root = "%[1]s/root"
state = "%[1]s/state"
[grpc]
  address = %[2]q
[plugins."io.containerd.internal.v1.opt"]
  path = "%[1]s/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %[4]q
  stream_server_address = "127.0.0.1"
  netns_mounts_under_state_dir = true
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = %[3]q
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "%[1]s/runc"
`, dir, socket, cniDir, pauseImage)
}

func kubeletConfig(run, pki, socket string) string {
	return fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
failSwapOn: false
containerRuntimeEndpoint: unix://%[3]s
address: %[4]s
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
tlsCertFile: %[2]s/kubelet-serving.crt
tlsPrivateKeyFile: %[2]s/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: %[2]s/ca.crt}
authorization: {mode: Webhook}
clusterDomain: cluster.local
clusterDNS: []
resolvConf: ""
podLogsDir: %[1]s/pod-logs
evictionHard: {memory.available: 50Mi, nodefs.available: 1%%, imagefs.available: 1%%, nodefs.inodesFree: 1%%}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
maxPods: 60
rotateCertificates: false
shutdownGracePeriod: 0s
makeIPTablesUtilChains: false
syncFrequency: 10s
nodeStatusUpdateFrequency: 2s
nodeStatusReportFrequency: 1m
`, run, pki, socket, NodeIP)
}

func kubeProxyConfig(kubeconfig string) string {
	return fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
hostnameOverride: %s
clientConnection: {kubeconfig: %q}
clusterCIDR: %s
bindAddress: %s
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
nodePortAddresses: ["%s/32"]
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s, udpTimeout: 0s, udpStreamTimeout: 0s}
iptables: {minSyncPeriod: 200ms}
`, NodeName, kubeconfig, podSubnet, NodeIP, NodeIP)
}
