package bench

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/refit-dev/refit/internal/api"
	"github.com/refit-dev/refit/internal/client"
)

// BenchmarkApply times `refit apply -f` of 1,000 and 10,000 dir tasks
// against a real `refit serve` process (fresh data directory per size,
// managed buildkitd): new, then the same file again (unchanged). The tasks
// spread over 2,000 Dockerfiles, each FROM its own base reference. The
// 10,000/1,000 ratio of each is printed (10 = linear), with the serve
// process's RSS, and the server's share of an unchanged apply (the same
// tasks sent by the Go client). Nothing is asserted.
func BenchmarkApply(b *testing.B) {
	if testing.Short() {
		b.Skip("runs refit serve with 10,000 tasks")
	}
	root, err := moduleRoot()
	if err != nil {
		b.Fatal(err)
	}
	bin := filepath.Join(b.TempDir(), "refit")
	if out, err := exec.Command("go", "build", "-o", bin, filepath.Join(root, "cmd", "refit")).CombinedOutput(); err != nil {
		b.Fatalf("building refit: %v\n%s", err, out)
	}
	if os.Getenv("REFIT_BUILDKITD") == "" && fileExists(filepath.Join(root, "bin", "buildkitd")) {
		os.Setenv("REFIT_BUILDKITD", filepath.Join(root, "bin", "buildkitd"))
	}
	const nRefs = 2000
	src := b.TempDir()
	var out strings.Builder
	logf := func(format string, args ...any) { fmt.Fprintf(&out, format+"\n", args...) }
	times := map[string]map[int]time.Duration{"new": {}, "unchanged": {}}
	for _, n := range []int{1000, 10000} {
		p := startRefit(b, bin)
		file := filepath.Join(b.TempDir(), "tasks.yaml")
		size := writeApplyFile(b, file, src, p.registry, n, nRefs)
		for _, phase := range []string{"new", "unchanged"} {
			start := time.Now()
			cmd := exec.Command(bin, "apply", "-f", file, "-o", "json")
			cmd.Env = append(os.Environ(), "REFIT_SERVER="+p.api, "REFIT_TOKEN="+p.token)
			stdout, err := cmd.Output()
			d := time.Since(start)
			how := "CLI"
			if err != nil {
				// The CLI refused (main refused files over 1 MiB): time the
				// same tasks through the API alone, and say so.
				var stderr string
				if ee, ok := err.(*exec.ExitError); ok {
					stderr = strings.TrimSpace(string(ee.Stderr))
				}
				how = fmt.Sprintf("API (the CLI failed: %.120s)", stderr)
				start = time.Now()
				res, err := client.New(p.api, p.token).ApplyTasks(context.Background(), applySpecs(src, p.registry, n, nRefs))
				d = time.Since(start)
				if err != nil {
					b.Fatalf("apply of %d tasks through the API: %v", n, err)
				}
				stdout = []byte(fmt.Sprint(res))
			}
			want := map[string]string{"new": "created", "unchanged": "unchanged"}[phase]
			if got := strings.Count(string(stdout), want); got != n {
				b.Errorf("apply %s of %d: %d tasks %s, want all", phase, n, got, want)
			}
			times[phase][n] = d
			rss, hwm := procMem(b, p.pid)
			logf("apply %-9s %5d tasks (%.1f MiB file) %9s via %s; serve RSS %s (peak %s)", phase, n, float64(size)/(1<<20), ms(d), how, mib(rss), mib(hwm))
			b.ReportMetric(float64(d.Milliseconds()), fmt.Sprintf("ms/%s-%d", phase, n))
		}
		// The server's share of an unchanged apply: the same tasks sent
		// by the Go client, no YAML read.
		specs := applySpecs(src, p.registry, n, nRefs)
		start := time.Now()
		if _, err := client.New(p.api, p.token).ApplyTasks(context.Background(), specs); err != nil {
			b.Fatalf("apply of %d unchanged tasks through the API: %v", n, err)
		}
		d := time.Since(start)
		logf("apply %-9s %5d tasks through the API alone  %9s", "unchanged", n, ms(d))
		b.ReportMetric(float64(d.Milliseconds()), fmt.Sprintf("ms/api-unchanged-%d", n))
	}
	for _, phase := range []string{"new", "unchanged"} {
		r := float64(times[phase][10000]) / float64(times[phase][1000])
		logf("ratio %s 10,000/1,000: %.1f (linear is 10)", phase, r)
		b.ReportMetric(r, "ratio-"+phase)
	}
	b.ReportMetric(0, "ns/op")
	b.Log("\n" + out.String())
	fmt.Fprint(os.Stderr, out.String())
}

// refitProcess is a running `refit serve`.
type refitProcess struct {
	api, registry, token string
	pid                  int
}

// startRefit runs `refit serve` on a fresh data directory until the
// benchmark ends.
func startRefit(b *testing.B, bin string) refitProcess {
	b.Helper()
	data := b.TempDir()
	apiAddr, reg := freeAddr(b), freeAddr(b)
	cmd := exec.Command(bin, "serve", "--data", data, "--listen", apiAddr, "--registry-listen", reg, "--workers", "1")
	logPath := filepath.Join(b.TempDir(), "serve.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = logFile
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		logFile.Close()
	})
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "http://"+apiAddr) {
				ready <- true
				break
			}
		}
		for sc.Scan() {
		}
		ready <- false
	}()
	select {
	case ok := <-ready:
		if !ok {
			log, _ := os.ReadFile(logPath)
			b.Fatalf("refit serve exited before printing its banner:\n%s", log)
		}
	case <-time.After(time.Minute):
		b.Fatal("refit serve did not start within a minute")
	}
	token, err := os.ReadFile(filepath.Join(data, "admin-token"))
	if err != nil {
		b.Fatal(err)
	}
	return refitProcess{api: "http://" + apiAddr, registry: reg, token: strings.TrimSpace(string(token)), pid: cmd.Process.Pid}
}

// writeApplyFile writes n tasks over nRefs contexts under src (each a
// Dockerfile FROM its own base in registry) as a YAML stream, and returns
// its size.
func writeApplyFile(b *testing.B, file, src, registry string, n, nRefs int) int {
	b.Helper()
	for i := range nRefs {
		dir := filepath.Join(src, fmt.Sprintf("c%04d", i))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		df := fmt.Sprintf("FROM %s/base/b%04d:1 AS build\nRUN make\nFROM %s/base/b%04d:1\nCOPY --from=build /out /app\n", registry, i, registry, i)
		if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	var y strings.Builder
	for i := range n {
		fmt.Fprintf(&y, "name: t%05d\nsource: {dir: %s}\ncontext: c%04d\nimage: fleet/t%05d\ntags: [latest, \"{{.Run.ID}}\"]\nbuildArgs: {VERSION: \"1\"}\n---\n", i, src, i%nRefs, i)
	}
	if err := os.WriteFile(file, []byte(y.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	return y.Len()
}

// applySpecs is the file writeApplyFile writes, as API specs.
func applySpecs(src, registry string, n, nRefs int) []api.TaskSpec {
	out := make([]api.TaskSpec, n)
	for i := range n {
		out[i] = api.TaskSpec{Name: fmt.Sprintf("t%05d", i), Source: api.TaskSource{Dir: src}, Context: fmt.Sprintf("c%04d", i%nRefs),
			Image: fmt.Sprintf("fleet/t%05d", i), Tags: []string{"latest", "{{.Run.ID}}"}, BuildArgs: map[string]string{"VERSION": "1"}}
	}
	return out
}

// procMem returns VmRSS and VmHWM of process pid in bytes.
func procMem(b *testing.B, pid int) (rss, hwm int64) {
	b.Helper()
	body, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(body), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		n, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
		if k == "VmRSS" {
			rss = n << 10
		} else {
			hwm = n << 10
		}
	}
	return rss, hwm
}

// freeAddr returns a loopback address with a port free at the time.
func freeAddr(b *testing.B) string {
	b.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
