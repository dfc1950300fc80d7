package bench

import (
	"archive/zip"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime/metrics"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/refit-dev/refit/internal/client"
	"github.com/refit-dev/refit/internal/pgtest"
	"github.com/refit-dev/refit/internal/server"
	"github.com/refit-dev/refit/internal/store"
	"github.com/refit-dev/refit/internal/vulndb"
	"github.com/refit-dev/refit/internal/vulndb/osvtest"
)

// BenchmarkVulnDB: a synthetic OSV export of REFIT_BENCH_ADVISORIES
// (default 20,000) Debian advisories, each for one of 2,000 packages in
// Debian 11, 12 and 13 (60,000 affected rows), imported through the real
// API (POST /api/v1/vulndb, spooled, parsed, one transaction) into a real
// store (SQLite, or PostgreSQL with REFIT_TEST_POSTGRES=1): wall time,
// advisories per second, peak RSS (VmHWM, reset before the import) and
// peak Go heap. Then Changes() for random package moves: lookups per
// second, one goroutine and four, with the median and p99 latency.
// Figures are reported, never asserted.
func BenchmarkVulnDB(b *testing.B) {
	n := envInt(b, "REFIT_BENCH_ADVISORIES", 20_000)
	const packages = 2_000
	ctx := context.Background()
	dir := b.TempDir()
	file := filepath.Join(dir, "all.zip")
	size := writeSyntheticExport(b, file, n, packages)

	cfg := store.Config{Path: filepath.Join(dir, "refit.db")}
	if pgtest.Wanted() {
		cfg = store.Config{URL: pgtest.URL(b)}
	}
	st, err := store.Open(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	db := vulndb.New(vulndb.Config{Store: st})
	srv := httptest.NewServer(server.New(server.Config{Store: st, Events: st, Index: st, VulnDB: db, TempDir: dir}))
	defer srv.Close()
	token, err := st.NewToken(ctx, "bench")
	if err != nil {
		b.Fatal(err)
	}
	c := client.New(srv.URL, token)

	for range b.N {
		rssBefore, _ := memStatus(b)
		resetPeakRSS(b)
		stop := sampleHeap()
		f, err := os.Open(file)
		if err != nil {
			b.Fatal(err)
		}
		// Other writes during the import: one small store write every
		// 20 ms, each timed (how long the import keeps them waiting).
		stopWrites := make(chan struct{})
		var writeLat []time.Duration
		var writers sync.WaitGroup
		writers.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stopWrites:
					return
				case <-time.After(20 * time.Millisecond):
				}
				t0 := time.Now()
				if err := st.PutCatalog(ctx, fmt.Sprintf("sha256:during-import-%d", i), []byte(`{}`)); err != nil {
					b.Error(err)
					return
				}
				writeLat = append(writeLat, time.Since(t0))
			}
		})
		start := time.Now()
		status, err := c.ImportVulnDB(ctx, f, size)
		took := time.Since(start)
		close(stopWrites)
		writers.Wait()
		f.Close()
		if len(writeLat) == 0 {
			writeLat = []time.Duration{0}
		}
		heapPeak := stop()
		if err != nil {
			b.Fatal(err)
		}
		_, hwm := memStatus(b)
		if status.Advisories != n {
			b.Fatalf("imported %d advisories, want %d", status.Advisories, n)
		}
		rows := 0
		for _, e := range status.Ecosystems {
			rows += e.Advisories
		}

		// Changes: random packages moved between two random versions.
		rng := rand.New(rand.NewPCG(7, 7))
		type move struct{ eco, name, from, to string }
		moves := make([]move, 4096)
		for i := range moves {
			p := rng.IntN(packages)
			a, b := rng.IntN(40), rng.IntN(40)
			moves[i] = move{fmt.Sprintf("Debian:%d", 11+rng.IntN(3)), fmt.Sprintf("pkg%04d", p), fmt.Sprintf("1.%d-1", a), fmt.Sprintf("1.%d-1", b)}
		}
		lookups := func(workers int, per int) (float64, time.Duration, time.Duration, int) {
			lat := make([][]time.Duration, workers)
			found := make([]int, workers)
			var wg sync.WaitGroup
			start := time.Now()
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range per {
						m := moves[(w*per+i)%len(moves)]
						t0 := time.Now()
						fx, in, err := db.Changes(ctx, m.eco, m.name, m.from, m.to)
						lat[w] = append(lat[w], time.Since(t0))
						if err != nil {
							b.Error(err)
							return
						}
						found[w] += len(fx) + len(in)
					}
				}()
			}
			wg.Wait()
			el := time.Since(start)
			all := slices.Concat(lat...)
			total := 0
			for _, f := range found {
				total += f
			}
			return float64(len(all)) / el.Seconds(), percentile(all, 0.5), percentile(all, 0.99), total
		}
		one, p50, p99, hits := lookups(1, 5000)
		four, p50x4, p99x4, _ := lookups(4, 2500)

		backend := "SQLite"
		if pgtest.Wanted() {
			backend = "PostgreSQL"
		}
		logReport(b, fmt.Sprintf(`store: %s
export: %d advisories, %d packages, %d affected rows, %s zip
import via POST /api/v1/vulndb: %s (%.0f advisories/s)
other writes during the import: %d, median %s, max %s
memory: RSS before %s, peak RSS during the import %s (VmHWM), peak Go heap %s
Changes(): 1 goroutine %.0f lookups/s (p50 %s, p99 %s; %d vulnerabilities named in 5,000 moves)
Changes(): 4 goroutines %.0f lookups/s (p50 %s, p99 %s)
`, backend, n, packages, rows, mib(size), took.Round(time.Millisecond), float64(n)/took.Seconds(),
			len(writeLat), ms2(percentile(writeLat, 0.5)), ms2(percentile(writeLat, 1)),
			mib(rssBefore), mib(hwm), mib(heapPeak), one, ms2(p50), ms2(p99), hits, four, ms2(p50x4), ms2(p99x4)))
		b.ReportMetric(float64(n)/took.Seconds(), "advisories/s")
		b.ReportMetric(one, "lookups/s")
		b.ReportMetric(float64(hwm)/(1<<20), "peakRSS-MiB")
		b.ReportMetric(float64(percentile(writeLat, 1).Microseconds())/1000, "max-write-wait-ms")
	}
}

// writeSyntheticExport writes an OSV export of n Debian advisories over
// the given number of packages, shaped like Debian's records (upstream
// CVE, details, a third with CVSS, a third with urgency, three releases
// each, a versions list on some), and returns its size.
func writeSyntheticExport(b *testing.B, file string, n, packages int) int64 {
	b.Helper()
	f, err := os.Create(file)
	if err != nil {
		b.Fatal(err)
	}
	zw := zip.NewWriter(f)
	rng := rand.New(rand.NewPCG(1, 1))
	details := strings.Repeat("A flaw was found in the handling of crafted input that may lead to a crash. ", 4)
	for i := range n {
		id := fmt.Sprintf("DEBIAN-CVE-%d-%05d", 2015+i%11, i)
		pkg := fmt.Sprintf("pkg%04d", rng.IntN(packages))
		var sev, eco string
		switch i % 3 {
		case 0:
			sev = `"severity":[{"type":"CVSS_V3","score":"` + []string{osvtest.High, osvtest.Critical, osvtest.Medium}[rng.IntN(3)] + `"}],`
		case 1:
			eco = `,"ecosystem_specific":{"urgency":"` + []string{"low", "medium", "high", "unimportant"}[rng.IntN(4)] + `"}`
		}
		var affected []string
		for _, rel := range []int{11, 12, 13} {
			fixed := rng.IntN(40)
			versions := ""
			if rng.IntN(4) == 0 {
				versions = fmt.Sprintf(`,"versions":["1.%d-1","1.%d-2","1.%d-1"]`, fixed, fixed, fixed+1)
			}
			affected = append(affected, fmt.Sprintf(`{"package":{"ecosystem":"Debian:%d","name":%q},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"1.%d-1"}]}]%s%s}`,
				rel, pkg, fixed, versions, eco))
		}
		w, err := zw.Create(id + ".json")
		if err != nil {
			b.Fatal(err)
		}
		fmt.Fprintf(w, `{"schema_version":"1.6.0","id":%q,"modified":"2026-11-%02dT10:00:00Z","upstream":["CVE-%s"],"details":%q,%s"affected":[%s]}`,
			id, 1+i%28, strings.TrimPrefix(id, "DEBIAN-CVE-"), details, sev, strings.Join(affected, ","))
	}
	if err := zw.Close(); err != nil {
		b.Fatal(err)
	}
	fi, err := f.Stat()
	if err != nil {
		b.Fatal(err)
	}
	f.Close()
	return fi.Size()
}

// resetPeakRSS resets this process's VmHWM to its current RSS (Linux:
// "5" to /proc/self/clear_refs).
func resetPeakRSS(b *testing.B) {
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		b.Logf("cannot reset the peak RSS (%v): it covers the whole benchmark", err)
	}
}

// sampleHeap samples the Go heap every 5 ms until the returned function
// is called, which returns the largest sample.
func sampleHeap() func() int64 {
	done := make(chan struct{})
	peak := make(chan int64)
	go func() {
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		var max int64
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(s)
			if v := int64(s[0].Value.Uint64()); v > max {
				max = v
			}
			select {
			case <-done:
				peak <- max
				return
			case <-t.C:
			}
		}
	}()
	return func() int64 { close(done); return <-peak }
}
