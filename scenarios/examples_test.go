package scenarios

import (
	"net"
	"path/filepath"
	"strings"
	"testing"
)

// Every example must load, and (the repository's safety rule) send traffic
// to loopback only.
func TestExamples(t *testing.T) {
	paths, err := filepath.Glob("examples/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var scenarioPaths []string
	for _, path := range paths {
		// capacity plans: TestPlanExamples; drill plans: TestDrillExample
		if !strings.HasSuffix(path, "-plan.yaml") && !strings.HasSuffix(path, "-drill.yaml") {
			scenarioPaths = append(scenarioPaths, path)
		}
	}
	paths = scenarioPaths
	if len(paths) < 3 {
		t.Fatalf("found %d examples, want at least checkout, ramp and closed", len(paths))
	}
	for _, path := range paths {
		t.Run(filepath.Base(path), func(t *testing.T) {
			f, err := Load(path)
			if err != nil {
				t.Fatalf("example does not load:\n%v", err)
			}
			for _, r := range f.Requests {
				if r.GRPC != nil {
					host, _, err := net.SplitHostPort(r.GRPC.Target)
					if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
						t.Errorf("request %s targets %s: examples may only target loopback", r.Name, r.GRPC.Target)
					}
					continue
				}
				host, _, err := net.SplitHostPort(r.Host)
				ip := net.ParseIP(host)
				if err != nil || ip == nil || !ip.IsLoopback() {
					t.Errorf("request %s targets %s: examples may only target loopback", r.Name, r.Host)
				}
			}
			s := f.NewState(0)
			for _, r := range f.Requests {
				s.Next()
				if r.GRPC != nil {
					if r.GRPC.Method == nil {
						t.Errorf("request %s: method %s not resolved", r.Name, r.GRPC.FullMethod)
					}
					continue
				}
				if p := string(r.Path.AppendTo(nil, s)); p == "" || p[0] != '/' {
					t.Errorf("request %s renders path %q", r.Name, p)
				}
			}
		})
	}
}

// Every example capacity plan (examples/*-plan.yaml) must load.
func TestPlanExamples(t *testing.T) {
	paths, err := filepath.Glob("examples/*-plan.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Fatal("found no examples/*-plan.yaml")
	}
	for _, path := range paths {
		t.Run(filepath.Base(path), func(t *testing.T) {
			p, err := LoadPlan(path)
			if err != nil {
				t.Fatalf("example plan does not load:\n%v", err)
			}
			if len(p.Services) == 0 || !(p.Peak.EntryQPS > 0) {
				t.Errorf("example plan has %d services and a peak of %v", len(p.Services), p.Peak.EntryQPS)
			}
		})
	}
}
