package shop

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// nginxBin returns the nginx binary, skipping the test without one unless
// LOADCAP_REQUIRE_NGINX=1 (CI), where it fails.
func nginxBin(t *testing.T) string {
	t.Helper()
	bin := LookNginx()
	if bin == "" {
		if os.Getenv("LOADCAP_REQUIRE_NGINX") == "1" {
			t.Fatal("LOADCAP_REQUIRE_NGINX=1 but no nginx binary")
		}
		t.Skip("no nginx binary (nginx-light; LOADCAP_REQUIRE_NGINX=1 makes this a failure)")
	}
	return bin
}

// adminReplicas reads or (n > 0) sets a service's replicas.
func adminReplicas(t *testing.T, metricsURL string, n int) Replicas {
	t.Helper()
	url := strings.TrimSuffix(metricsURL, "/metrics") + "/admin/replicas"
	var resp *http.Response
	var err error
	if n > 0 {
		resp, err = http.Post(fmt.Sprintf("%s?n=%d", url, n), "", nil)
	} else {
		resp, err = http.Get(url)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r Replicas
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: %s, %v", url, resp.Status, err)
	}
	return r
}

// The gateway behind nginx: scaled from 1 to 3 to 2 replicas through its
// admin endpoint, nginx's upstreams follow (a reload each time), the
// traffic spreads over the live replicas only, and a light load running
// throughout sees no failed request.
func TestGatewayScalesBehindNginx(t *testing.T) {
	bin := nginxBin(t)
	s := startShop(t, Config{Nginx: bin, ReplicaStartup: 200 * time.Millisecond})
	gw, _ := s.Endpoint(Gateway)
	// A new connection sees the configuration in force; a kept-alive one
	// may still be on an old worker finishing.
	fresh := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	generation := func() string {
		resp, err := fresh.Get(gw.URL + GenerationPath)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return strings.TrimSpace(string(b))
	}
	r := adminReplicas(t, gw.MetricsURL, 0)
	if r.Ready != 1 || len(r.Backends) != 1 || generation() != "1" {
		t.Fatalf("at the start: %+v, generation %s; want 1 replica behind nginx's first configuration", r, generation())
	}
	if r.Backends[0].Addr == gw.Addr {
		t.Fatalf("the replica listens on nginx's address %s", gw.Addr)
	}

	// A light load: 2 clients, a request every 5 ms each.
	ctx, cancel := context.WithCancel(context.Background())
	var sent, failed atomic.Int64
	var firstErr sync.Once
	var wg sync.WaitGroup
	for c := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				resp, err := http.Get(fmt.Sprintf("%s/api/products/%d", gw.URL, 1+(i+c)%50))
				sent.Add(1)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("status %s", resp.Status)
					}
				}
				if err != nil {
					failed.Add(1)
					firstErr.Do(func() { t.Errorf("request during scaling: %v", err) })
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	defer func() { cancel(); wg.Wait() }()

	// scaleTo scales, waits until the replicas are ready, and returns the
	// requests each live replica served over the next second.
	scaleTo := func(n int, gen string) map[string]uint64 {
		t.Helper()
		adminReplicas(t, gw.MetricsURL, n)
		deadline := time.Now().Add(10 * time.Second)
		for r = adminReplicas(t, gw.MetricsURL, 0); r.Ready != n; r = adminReplicas(t, gw.MetricsURL, 0) {
			if time.Now().After(deadline) {
				t.Fatalf("scaled to %d: %+v after 10 s", n, r)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if g := generation(); g != gen || len(r.Backends) != n {
			t.Fatalf("scaled to %d: %+v, nginx's generation %s; want %d backends at generation %s", n, r, g, n, gen)
		}
		before := map[string]uint64{}
		for _, b := range r.Backends {
			before[b.Addr] = b.Requests
		}
		time.Sleep(time.Second)
		served := map[string]uint64{}
		for _, b := range adminReplicas(t, gw.MetricsURL, 0).Backends {
			served[b.Addr] = b.Requests - before[b.Addr]
		}
		return served
	}
	spread := func(served map[string]uint64, n int) {
		t.Helper()
		var total uint64
		for _, v := range served {
			total += v
		}
		if len(served) != n || total < 50 {
			t.Fatalf("%d replicas served %d requests in 1 s (%v); want %d replicas serving", len(served), total, served, n)
		}
		for addr, v := range served {
			if float64(v) < 0.5*float64(total)/float64(n) {
				t.Errorf("replica %s served %d of %d requests (%v); want about 1/%d each", addr, v, total, served, n)
			}
		}
		t.Logf("%d replicas: %v", n, served)
	}

	three := scaleTo(3, "2")
	spread(three, 3)
	two := scaleTo(2, "3")
	spread(two, 2)
	var gone string
	for addr := range three {
		if _, ok := two[addr]; !ok {
			gone = addr
		}
	}
	// The replica taken out is drained and closed.
	deadline := time.Now().Add(6 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", gone, time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatalf("replica %s still listens after it left nginx's upstreams", gone)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Errorf("%d of %d requests failed while the gateway scaled behind nginx", n, sent.Load())
	}
	t.Logf("%d requests, %d failed, across 2 reloads", sent.Load(), failed.Load())
}
