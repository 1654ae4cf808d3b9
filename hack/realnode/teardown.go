//go:build linux

package realnode

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// teardown removes everything a node made under dir and on the host, in the order that lets each
// step succeed: the components that create pods first, then the pods (through the CRI, so that the
// CNI plugins release their veths and addresses), containerd and its shims, the control plane,
// then mounts, cgroups, rules, the bridge and the sysctls. Each step is idempotent, so teardown
// also finishes a run that was killed at any point.
func teardown(dir string, log func(string, ...any)) {
	t0 := time.Now()
	run := filepath.Join(dir, "run")
	pids := filepath.Join(run, "pids")
	for _, c := range []string{"kube-proxy", "kube-scheduler", "kube-controller-manager", "kubelet"} {
		stopRecorded(pids, c, log)
	}
	sock := filepath.Join(run, "containerd", "containerd.sock")
	removePods(sock, log)
	stopRecorded(pids, "containerd", log)
	killShims(sock, log)
	for _, c := range []string{"kube-apiserver", "etcd"} {
		stopRecorded(pids, c, log)
	}
	unmountUnder(run, log)
	removeCgroups(log)
	removeRules(dir, log)
	if exec.Command("ip", "link", "show", Bridge).Run() == nil {
		if out, err := exec.Command("ip", "link", "del", Bridge).CombinedOutput(); err != nil {
			log("deleting bridge %s: %v: %s", Bridge, err, out)
		}
	}
	removeHostFiles(dir, run)
	(hostState{dir}).restore(log)
	if err := os.RemoveAll(run); err != nil {
		log("removing %s: %v", run, err)
	}
	log("down (%.1fs)", time.Since(t0).Seconds())
}

// stopRecorded stops the process whose PID run/pids/<name>.pid holds: SIGTERM, then SIGKILL after
// 10s. A PID that now belongs to another program (reused after a reboot) is left alone.
func stopRecorded(pids, name string, log func(string, ...any)) {
	file := filepath.Join(pids, name+".pid")
	b, err := os.ReadFile(file)
	if err != nil {
		return
	}
	defer os.Remove(file)
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || !alive(pid) {
		return
	}
	exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if filepath.Base(strings.TrimSuffix(exe, " (deleted)")) != name {
		return
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	for i := 0; i < 100 && alive(pid); i++ {
		time.Sleep(100 * time.Millisecond)
	}
	if alive(pid) {
		log("%s (%d) ignored SIGTERM for 10s: SIGKILL", name, pid)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// alive is false for a process that is gone or a zombie (exited, not yet reaped).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(fields) > 0 && fields[0] != "Z"
}

// removePods stops and removes every pod sandbox through the CRI: containerd kills the containers
// and calls the CNI plugins' DEL, which frees the pod's veth and address.
func removePods(sock string, log func(string, ...any)) {
	if _, err := os.Stat(sock); err != nil {
		return
	}
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return
	}
	defer conn.Close()
	rt := cri.NewRuntimeServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	list, err := rt.ListPodSandbox(ctx, &cri.ListPodSandboxRequest{})
	if err != nil {
		return // containerd is not running: killShims and unmountUnder do the rest
	}
	for _, p := range list.Items {
		if _, err := rt.StopPodSandbox(ctx, &cri.StopPodSandboxRequest{PodSandboxId: p.Id}); err != nil {
			log("stopping pod %s/%s: %v", p.Metadata.GetNamespace(), p.Metadata.GetName(), err)
		}
		if _, err := rt.RemovePodSandbox(ctx, &cri.RemovePodSandboxRequest{PodSandboxId: p.Id}); err != nil {
			log("removing pod %s/%s: %v", p.Metadata.GetNamespace(), p.Metadata.GetName(), err)
		}
	}
	if len(list.Items) > 0 {
		log("removed %d pods through the CRI", len(list.Items))
	}
}

// killShims kills the runc shims of our containerd, which outlive it while a task is left; they
// are found by the socket in their command line.
func killShims(sock string, log func(string, ...any)) {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range procs {
		b, err := os.ReadFile(f)
		if err != nil || !strings.Contains(string(b), sock) {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(f)))
		if pid == os.Getpid() {
			continue
		}
		log("killing leftover shim %d", pid)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// unmountUnder unmounts everything below run (container root filesystems, shm, network
// namespaces, volumes), deepest first, lazily where a mount is still busy.
func unmountUnder(run string, log func(string, ...any)) {
	for range 5 {
		var mounts []string
		f, err := os.Open("/proc/self/mounts")
		if err != nil {
			return
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) > 1 && strings.HasPrefix(unescapeMount(fields[1]), run+"/") {
				mounts = append(mounts, unescapeMount(fields[1]))
			}
		}
		f.Close()
		if len(mounts) == 0 {
			return
		}
		slices.Sort(mounts)
		slices.Reverse(mounts)
		for _, m := range mounts {
			if syscall.Unmount(m, 0) != nil {
				_ = syscall.Unmount(m, syscall.MNT_DETACH)
			}
		}
		log("unmounted %d mounts under %s", len(mounts), run)
	}
}

// unescapeMount undoes the octal escapes of /proc/self/mounts (a space is \040).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// removeCgroups removes the kubelet's kubepods cgroups, in every v1 hierarchy and the unified
// one, leaves first.
func removeCgroups(log func(string, ...any)) {
	roots, _ := filepath.Glob("/sys/fs/cgroup/*/kubepods")
	roots = append(roots, "/sys/fs/cgroup/kubepods")
	for _, root := range roots {
		var dirs []string
		_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			_ = syscall.Rmdir(dirs[i])
		}
		if _, err := os.Stat(root); err == nil {
			log("cgroup %s still there", root)
		}
	}
}

// removeRules removes kube-proxy's rules (its own cleanup, and the KUBE-FIREWALL chain it leaves),
// the guard rule, kube-proxy's nfacct counters and the nftables tables that iptables-nft created
// and that are empty now.
func removeRules(dir string, log func(string, ...any)) {
	bins := cachedBinaries()
	if bins != "" {
		if _, err := os.Stat(filepath.Join(bins, "kube-proxy")); err == nil {
			_ = exec.Command(filepath.Join(bins, "kube-proxy"), "--cleanup").Run()
		}
	}
	for _, ipt := range []string{"iptables", "ip6tables"} {
		for _, chain := range []string{"INPUT", "OUTPUT"} {
			for exec.Command(ipt, "-D", chain, "-j", "KUBE-FIREWALL").Run() == nil {
			}
		}
		if exec.Command(ipt, "-F", "KUBE-FIREWALL").Run() == nil {
			_ = exec.Command(ipt, "-X", "KUBE-FIREWALL").Run()
		}
	}
	for exec.Command("iptables", "-D", "FORWARD", "-i", Bridge, "!", "-o", Bridge, "-m", "comment",
		"--comment", guardNote, "-j", "DROP").Run() == nil {
	}
	host := hostState{dir}
	if _, err := os.Stat(host.file("sysctl")); err != nil {
		return // no saved host state: nothing to compare the counters and tables with
	}
	if counters, err := exec.Command("nfacct", "list").Output(); err == nil {
		for _, c := range []string{"ct_state_invalid_dropped_pkts", "localhost_nps_accepted_pkts"} {
			if strings.Contains(string(counters), "= "+c+";") && !host.has("nfacct", "= "+c+";") {
				_ = exec.Command("nfacct", "delete", c).Run()
			}
		}
	}
	tables, err := exec.Command("nft", "list", "tables").Output()
	if err != nil {
		return
	}
	for _, line := range strings.Split(strings.TrimSpace(string(tables)), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 || host.has("nft-tables", line) {
			continue
		}
		content, _ := exec.Command("nft", "-j", "list", "table", f[1], f[2]).Output()
		if strings.Contains(string(content), `"rule"`) {
			log("nftables table %s %s has rules: kept", f[1], f[2])
			continue
		}
		_ = exec.Command("nft", "delete", "table", f[1], f[2]).Run()
	}
}

// cachedBinaries is the folder hack/k8s-bins.sh builds into (without building anything).
func cachedBinaries() string {
	root := os.Getenv("MILLRACE_CACHE")
	if root == "" {
		cache := os.Getenv("XDG_CACHE_HOME")
		if cache == "" {
			home, _ := os.UserHomeDir()
			cache = filepath.Join(home, ".cache")
		}
		root = filepath.Join(cache, "millrace")
	}
	dirs, _ := filepath.Glob(filepath.Join(root, "k8s-*"))
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "kube-proxy")); err == nil {
			return d
		}
	}
	return ""
}

// removeHostFiles removes what the kubelet and the CNI plugins write outside run: the log
// symlinks under /var/log/containers, the device-plugin socket, the shims' socket folder, the CNI
// result cache; folders only where they did not exist before the first start, and only if empty.
func removeHostFiles(dir, run string) {
	links, _ := filepath.Glob("/var/log/containers/*")
	for _, l := range links {
		if target, err := os.Readlink(l); err == nil && strings.HasPrefix(target, run+"/") {
			_ = os.Remove(l)
		}
	}
	_ = syscall.Rmdir("/var/log/containers")
	_ = os.Remove("/var/lib/kubelet/device-plugins/kubelet.sock")
	if _, err := os.Stat(filepath.Join(dir, "host.var-lib-kubelet")); err != nil {
		_ = syscall.Rmdir("/var/lib/kubelet/device-plugins")
		_ = syscall.Rmdir("/var/lib/kubelet/plugins_registry")
		_ = syscall.Rmdir("/var/lib/kubelet/plugins")
		_ = syscall.Rmdir("/var/lib/kubelet")
	}
	if _, err := os.Stat(filepath.Join(dir, "host.run-containerd")); err != nil {
		_ = syscall.Rmdir("/run/containerd/s") // the shims' sockets (fixed in containerd 1.6)
		_ = syscall.Rmdir("/run/containerd")
	}
	results, _ := filepath.Glob("/var/lib/cni/results/millrace-realnode-*")
	for _, r := range results {
		_ = os.Remove(r)
	}
	_ = syscall.Rmdir("/var/lib/cni/results")
	_ = syscall.Rmdir("/var/lib/cni")
}
