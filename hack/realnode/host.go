package realnode

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// hostPackages are Debian's packages the node needs, each with a file that shows it is installed.
var hostPackages = []struct{ pkg, file string }{
	{"containerd", "/usr/bin/containerd"},
	{"runc", "/usr/sbin/runc"},
	{"containernetworking-plugins", "/usr/lib/cni/bridge"},
	{"iptables", "/usr/sbin/iptables"},
	{"nftables", "/usr/sbin/nft"},  // to drop the empty tables iptables-nft leaves behind
	{"nfacct", "/usr/sbin/nfacct"}, // to delete kube-proxy's nfacct counters (it never does)
}

// sysctls the node changes (ip_forward, bridge-nf-call-iptables) or the kubelet and kube-proxy
// set at start (panic, overcommit, keys, route_localnet). Saved before the first change, restored
// by teardown.
var sysctls = []string{"net/ipv4/ip_forward", "net/bridge/bridge-nf-call-iptables", "vm/overcommit_memory",
	"vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops", "kernel/keys/root_maxkeys",
	"kernel/keys/root_maxbytes", "net/ipv4/conf/all/route_localnet"}

// installPackages installs the missing host packages with apt-get (updating the lists only when
// an install fails, as on a fresh machine), and leaves no system containerd running.
func installPackages(log func(string, ...any)) error {
	var missing []string
	for _, p := range hostPackages {
		if _, err := os.Stat(p.file); err != nil {
			missing = append(missing, p.pkg)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		return &UnsupportedError{"missing " + strings.Join(missing, ", ") + " and no apt-get to install them"}
	}
	log("installing %s from Debian's packages", strings.Join(missing, " "))
	install := func() error {
		cmd := exec.Command("apt-get", append([]string{"install", "-y", "-q", "--no-install-recommends"}, missing...)...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("apt-get install %s: %w\n%s", strings.Join(missing, " "), err, tail(out, 20))
		}
		return nil
	}
	if install() != nil {
		// A package that cannot be installed is this machine's limit, not a failure of the node:
		// callers fall back to the local-process harness and say why.
		if out, err := exec.Command("apt-get", "update", "-q").CombinedOutput(); err != nil {
			return &UnsupportedError{fmt.Sprintf("apt-get update failed (%v): %s", err, tail(out, 3))}
		}
		if err := install(); err != nil {
			return &UnsupportedError{strings.ReplaceAll(err.Error(), "\n", "; ")}
		}
	}
	return nil
}

func tail(out []byte, lines int) string {
	l := strings.Split(strings.TrimSpace(string(out)), "\n")
	return strings.Join(l[max(0, len(l)-lines):], "\n")
}

// hostState is what the node changes on the host, saved once before the first change (a run that
// was killed and restarted does not overwrite it with its own changes).
type hostState struct{ dir string }

func (h hostState) file(name string) string { return filepath.Join(h.dir, "host."+name) }

func (h hostState) save() error {
	if _, err := os.Stat(h.file("sysctl")); err == nil {
		return nil
	}
	var b strings.Builder
	for _, s := range sysctls {
		if v, err := os.ReadFile("/proc/sys/" + s); err == nil {
			fmt.Fprintf(&b, "%s %s\n", s, strings.TrimSpace(string(v)))
		}
	}
	tables, _ := exec.Command("nft", "list", "tables").Output()
	counters, _ := exec.Command("nfacct", "list").Output()
	files := map[string]string{"nft-tables": string(tables), "nfacct": string(counters)}
	// Folders the kubelet and containerd's shims make outside run/ (their paths are fixed).
	for name, dir := range map[string]string{"var-lib-kubelet": "/var/lib/kubelet", "run-containerd": "/run/containerd"} {
		if _, err := os.Stat(dir); err == nil {
			files[name] = "existed\n"
		}
	}
	for name, content := range files {
		if err := os.WriteFile(h.file(name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	// Last, so that its presence means the others are there too.
	return os.WriteFile(h.file("sysctl"), []byte(b.String()), 0o644)
}

// restore puts the sysctls back and forgets the saved state.
func (h hostState) restore(log func(string, ...any)) {
	f, err := os.Open(h.file("sysctl"))
	if err != nil {
		return
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if name, value, ok := strings.Cut(sc.Text(), " "); ok {
			_ = os.WriteFile("/proc/sys/"+name, []byte(value), 0o644)
		}
	}
	f.Close()
	for _, name := range []string{"nft-tables", "nfacct", "var-lib-kubelet", "run-containerd", "sysctl"} {
		_ = os.Remove(h.file(name))
	}
	log("sysctls restored")
}

func (h hostState) has(name, line string) bool {
	b, _ := os.ReadFile(h.file(name))
	for _, l := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(l) == line || strings.Contains(l, line) {
			return true
		}
	}
	return false
}

// setUpNetwork makes the bridge (before the API server, which binds its address), turns on
// forwarding (pod -> ClusterIP -> pod is routed) and bridge netfilter (kube-proxy's NAT sees
// traffic between pods on the bridge), and adds the guard rule: nothing from the bridge is
// forwarded anywhere but back to the bridge.
func setUpNetwork() error {
	steps := [][]string{
		{"ip", "link", "add", Bridge, "type", "bridge"},
		{"ip", "addr", "add", NodeIP + "/24", "dev", Bridge},
		{"ip", "link", "set", Bridge, "up"},
		{"modprobe", "br_netfilter"},
		{"iptables", "-I", "FORWARD", "-i", Bridge, "!", "-o", Bridge, "-m", "comment", "--comment", guardNote, "-j", "DROP"},
	}
	for _, s := range steps {
		if out, err := exec.Command(s[0], s[1:]...).CombinedOutput(); err != nil && s[0] != "modprobe" {
			return fmt.Errorf("%s: %w: %s", strings.Join(s, " "), err, strings.TrimSpace(string(out)))
		}
	}
	for _, s := range []string{"net/ipv4/ip_forward", "net/bridge/bridge-nf-call-iptables"} {
		if err := os.WriteFile("/proc/sys/"+s, []byte("1"), 0o644); err != nil {
			return fmt.Errorf("sysctl %s: %w", s, err)
		}
	}
	return nil
}
