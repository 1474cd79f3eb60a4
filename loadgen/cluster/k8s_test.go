package cluster

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

func TestK8sAgentsParseIntoKubernetesTypes(t *testing.T) {
	o := K8sOptions{Replicas: 20, Image: "registry/loadcap:v1", AllowTargets: []string{"10.20.0.0/16", "shop.internal"}, Namespace: "drills", CPU: "2", Memory: "1Gi"}
	b, err := K8sAgents(o)
	if err != nil {
		t.Fatal(err)
	}
	docs := bytes.Split(b, []byte("\n---\n"))
	if len(docs) != 3 { // the comment header, the Service, the Job
		t.Fatalf("%d YAML documents, want a header, a Service and a Job:\n%s", len(docs), b)
	}
	var svc corev1.Service
	var job batchv1.Job
	if err := yaml.UnmarshalStrict(docs[1], &svc); err != nil {
		t.Fatalf("Service: %v", err)
	}
	if err := yaml.UnmarshalStrict(docs[2], &job); err != nil {
		t.Fatalf("Job: %v", err)
	}
	if svc.Kind != "Service" || svc.Spec.ClusterIP != corev1.ClusterIPNone || svc.Name != "loadcap-agents" || svc.Namespace != "drills" {
		t.Errorf("want a headless Service loadcap-agents in drills: %+v", svc)
	}
	s := job.Spec
	if job.Kind != "Job" || s.CompletionMode == nil || *s.CompletionMode != batchv1.IndexedCompletion ||
		*s.Completions != 20 || *s.Parallelism != 20 {
		t.Fatalf("want an Indexed Job of 20 completions, 20 in parallel: %+v", s)
	}
	pod := s.Template.Spec
	if pod.Subdomain != svc.Name {
		t.Errorf("pods' subdomain %q must be the headless Service %q for per-index DNS names", pod.Subdomain, svc.Name)
	}
	for k, v := range svc.Spec.Selector {
		if s.Template.Labels[k] != v {
			t.Errorf("the Service selects %s=%s, the pods carry %q", k, v, s.Template.Labels[k])
		}
	}
	c := pod.Containers[0]
	want := []string{"agent", "--listen", "0.0.0.0:7070",
		"--tls-cert", "/etc/loadcap/tls/agent.pem", "--tls-key", "/etc/loadcap/tls/agent-key.pem", "--client-ca", "/etc/loadcap/tls/ca.pem",
		"--allow-target", "10.20.0.0/16,shop.internal", "--metrics-listen", "0.0.0.0:9464"}
	if !slices.Equal(c.Args, want) || c.Image != o.Image {
		t.Errorf("container %s args %q, want %q", c.Image, c.Args, want)
	}
	var secret string
	for _, v := range pod.Volumes {
		if v.Secret != nil {
			secret = v.Secret.SecretName
		}
	}
	if secret != "loadcap-agents-tls" {
		t.Errorf("TLS Secret %q, want a reference to loadcap-agents-tls", secret)
	}
	if bytes.Contains(b, []byte("PRIVATE KEY")) {
		t.Error("the manifests must reference the TLS material, never hold it")
	}
	if got := c.Resources.Limits.Cpu().String(); got != "2" {
		t.Errorf("cpu limit %s, want 2", got)
	}
	if *s.ActiveDeadlineSeconds != int64(DefaultActiveDeadline/time.Second) {
		t.Errorf("active deadline %d s", *s.ActiveDeadlineSeconds)
	}
	addrs := K8sAgentAddrs(o)
	for i, a := range addrs {
		if w := fmt.Sprintf("loadcap-agents-%d.loadcap-agents.drills.svc:7070", i); a != w {
			t.Errorf("agent %d at %s, want %s (Indexed Job pod host names are NAME-INDEX)", i, a, w)
		}
	}
	if len(addrs) != 20 {
		t.Errorf("%d addresses for 20 replicas", len(addrs))
	}
}

func TestK8sAgentsRefuseBadOptions(t *testing.T) {
	tests := []struct {
		name string
		o    K8sOptions
		want string
	}{
		{"no replicas", K8sOptions{Image: "x"}, "replicas 0"},
		{"no image", K8sOptions{Replicas: 1}, "image"},
		{"bad name", K8sOptions{Replicas: 1, Image: "x", Name: "Load_Cap"}, "DNS label"},
		{"bad allow list", K8sOptions{Replicas: 1, Image: "x", AllowTargets: []string{"10.0.0.0/99"}}, "allow-target"},
		{"same ports", K8sOptions{Replicas: 1, Image: "x", Port: 9000, MetricsPort: 9000}, "two different ports"},
		{"bad cpu", K8sOptions{Replicas: 1, Image: "x", CPU: "lots"}, "resource"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := K8sAgents(tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
}

func TestReportProblemsNameAgents(t *testing.T) {
	r := Report{Agents: []AgentReport{
		{Addr: "a:1", Share: 0.5, Status: AgentDone, Scheduled: 1000},
		{Addr: "b:1", Share: 0.25, Status: AgentDone, Scheduled: 1000, Dropped: 40, Late: 7, MaxLag: 230 * time.Millisecond},
		{Addr: "c:1", Share: 0.25, Status: AgentLost, LostAt: 12300 * time.Millisecond, Unsent: 420, Error: "stream broken"},
	}}
	got := strings.Join(r.Problems(), "\n")
	for _, want := range []string{
		"agent b:1 could not keep its rate: dropped 40 of 1000 arrivals (4.00%), 7 sent late, max lag 230ms",
		"agent c:1 lost at 12.3s (25.0% of the load, 420 planned arrivals not reported sent): stream broken",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("problems:\n%s\nwant a line %q", got, want)
		}
	}
	if strings.Contains(got, "a:1") {
		t.Errorf("a healthy agent is not a problem:\n%s", got)
	}
}
