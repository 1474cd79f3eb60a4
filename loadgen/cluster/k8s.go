package cluster

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// K8s manifest defaults.
const (
	DefaultK8sName        = "loadcap-agents"
	DefaultK8sNamespace   = "default"
	DefaultAgentPort      = 7070
	DefaultMetricsPort    = 9464
	DefaultActiveDeadline = 2 * time.Hour
	// K8sTLSDir is where the agent pods mount the TLS Secret.
	K8sTLSDir = "/etc/loadcap/tls"
)

// K8sOptions describe the agents `loadcap k8s agents` deploys.
type K8sOptions struct {
	Name      string // Job and headless Service; default DefaultK8sName
	Namespace string // default DefaultK8sNamespace
	Replicas  int    // agents, one Job index each
	Image     string // the loadcap image
	Port      int    // agent gRPC port; default DefaultAgentPort
	// MetricsPort serves Prometheus metrics; 0 = DefaultMetricsPort, -1 = none.
	MetricsPort  int
	AllowTargets []string // the agents' --allow-target entries; empty = loopback only (useless in a cluster)
	// TLSSecret names the Secret holding ca.pem, agent.pem and
	// agent-key.pem (as loadcap certs writes them); default Name + "-tls".
	TLSSecret string
	// ActiveDeadline ends the agents (the Job) after this long; default
	// DefaultActiveDeadline.
	ActiveDeadline time.Duration
	CPU, Memory    string // per agent, requests = limits; "" leaves them unset
}

var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

func (o *K8sOptions) defaults() error {
	if o.Name == "" {
		o.Name = DefaultK8sName
	}
	if o.Namespace == "" {
		o.Namespace = DefaultK8sNamespace
	}
	if o.Port == 0 {
		o.Port = DefaultAgentPort
	}
	if o.MetricsPort == 0 {
		o.MetricsPort = DefaultMetricsPort
	}
	if o.TLSSecret == "" {
		o.TLSSecret = o.Name + "-tls"
	}
	if o.ActiveDeadline <= 0 {
		o.ActiveDeadline = DefaultActiveDeadline
	}
	var errs []string
	// The pods' host names are Name-INDEX: a DNS label of at most 63.
	if !dnsLabel.MatchString(o.Name) || len(o.Name) > 50 {
		errs = append(errs, fmt.Sprintf("name %q: want a DNS label (lower-case letters, digits, '-') of at most 50 characters", o.Name))
	}
	if !dnsLabel.MatchString(o.Namespace) {
		errs = append(errs, fmt.Sprintf("namespace %q is not a DNS label", o.Namespace))
	}
	if o.Replicas < 1 || o.Replicas > 10000 {
		errs = append(errs, fmt.Sprintf("replicas %d: want 1 to 10000", o.Replicas))
	}
	if strings.TrimSpace(o.Image) == "" {
		errs = append(errs, "an image is required")
	}
	if o.Port < 1 || o.Port > 65535 || (o.MetricsPort != -1 && (o.MetricsPort < 1 || o.MetricsPort > 65535 || o.MetricsPort == o.Port)) {
		errs = append(errs, fmt.Sprintf("ports %d and %d: want two different ports 1-65535", o.Port, o.MetricsPort))
	}
	if len(o.AllowTargets) > 0 {
		if _, err := ParseAllowList(o.AllowTargets...); err != nil {
			errs = append(errs, err.Error())
		}
	}
	for _, q := range []string{o.CPU, o.Memory} {
		if q != "" {
			if _, err := resource.ParseQuantity(q); err != nil {
				errs = append(errs, fmt.Sprintf("resource %q: %v", q, err))
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("k8s agents: %s", strings.Join(errs, "; "))
	}
	return nil
}

// K8sAgentAddrs lists the agents' addresses (host:port) as the coordinator
// dials them from inside the cluster, by Job index: the pods'
// Name-INDEX.Name.NAMESPACE.svc names, which the headless Service
// publishes. Give the agent certificate the wildcard
// "*.NAME.NAMESPACE.svc" (loadcap certs --host).
func K8sAgentAddrs(o K8sOptions) []string {
	_ = o.defaults()
	out := make([]string, o.Replicas)
	for i := range out {
		out[i] = net.JoinHostPort(fmt.Sprintf("%s-%d.%s.%s.svc", o.Name, i, o.Name, o.Namespace), strconv.Itoa(o.Port))
	}
	return out
}

// K8sAgents writes the manifests of o's agents as YAML: a headless Service
// (stable DNS names per agent) and an Indexed Job (completionMode Indexed,
// parallelism = completions = replicas) whose pods run `loadcap agent` with
// mutual TLS from the Secret o.TLSSecret, which it references but does not
// contain (create it from loadcap certs' files).
func K8sAgents(o K8sOptions) ([]byte, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	labels := map[string]string{
		"app.kubernetes.io/name":       "loadcap-agent",
		"app.kubernetes.io/instance":   o.Name,
		"app.kubernetes.io/managed-by": "loadcap",
	}
	meta := metav1.ObjectMeta{Name: o.Name, Namespace: o.Namespace, Labels: labels}
	ports := []corev1.ServicePort{{Name: "grpc", Port: int32(o.Port), TargetPort: intstr.FromString("grpc")}}
	cports := []corev1.ContainerPort{{Name: "grpc", ContainerPort: int32(o.Port)}}
	args := []string{"agent",
		"--listen", "0.0.0.0:" + strconv.Itoa(o.Port),
		"--tls-cert", path.Join(K8sTLSDir, AgentCertFile),
		"--tls-key", path.Join(K8sTLSDir, AgentKeyFile),
		"--client-ca", path.Join(K8sTLSDir, CAFile),
	}
	if len(o.AllowTargets) > 0 {
		args = append(args, "--allow-target", strings.Join(o.AllowTargets, ","))
	}
	annotations := map[string]string{}
	if o.MetricsPort > 0 {
		ports = append(ports, corev1.ServicePort{Name: "metrics", Port: int32(o.MetricsPort), TargetPort: intstr.FromString("metrics")})
		cports = append(cports, corev1.ContainerPort{Name: "metrics", ContainerPort: int32(o.MetricsPort)})
		args = append(args, "--metrics-listen", "0.0.0.0:"+strconv.Itoa(o.MetricsPort))
		annotations["prometheus.io/scrape"] = "true"
		annotations["prometheus.io/port"] = strconv.Itoa(o.MetricsPort)
	}
	svc := corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: meta,
		Spec: corev1.ServiceSpec{
			ClusterIP: corev1.ClusterIPNone,
			Selector:  labels,
			Ports:     ports,
			// Agents are addressed by name as soon as they exist; the
			// coordinator waits for them to prepare.
			PublishNotReadyAddresses: true,
		},
	}
	n := int32(o.Replicas)
	deadline := int64(o.ActiveDeadline / time.Second)
	ttl := int32(3600)
	backoff := int32(o.Replicas) // an agent crash restarts its index; a crash loop ends the Job
	indexed := batchv1.IndexedCompletion
	no, yes := false, true
	uid := int64(65532)
	res := corev1.ResourceRequirements{}
	if o.CPU != "" || o.Memory != "" {
		res.Requests, res.Limits = corev1.ResourceList{}, corev1.ResourceList{}
		if o.CPU != "" {
			res.Requests[corev1.ResourceCPU] = resource.MustParse(o.CPU)
			res.Limits[corev1.ResourceCPU] = resource.MustParse(o.CPU)
		}
		if o.Memory != "" {
			res.Requests[corev1.ResourceMemory] = resource.MustParse(o.Memory)
			res.Limits[corev1.ResourceMemory] = resource.MustParse(o.Memory)
		}
	}
	job := batchv1.Job{
		TypeMeta:   metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"},
		ObjectMeta: meta,
		Spec: batchv1.JobSpec{
			CompletionMode:          &indexed,
			Completions:             &n,
			Parallelism:             &n,
			BackoffLimit:            &backoff,
			ActiveDeadlineSeconds:   &deadline,
			TTLSecondsAfterFinished: &ttl,
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: annotations},
				Spec: corev1.PodSpec{
					// Indexed Job pods are named NAME-INDEX; with the
					// headless Service as subdomain they resolve as
					// NAME-INDEX.NAME.NAMESPACE.svc.
					Subdomain:                    o.Name,
					RestartPolicy:                corev1.RestartPolicyOnFailure,
					AutomountServiceAccountToken: &no,
					SecurityContext: &corev1.PodSecurityContext{
						RunAsNonRoot: &yes, RunAsUser: &uid, RunAsGroup: &uid, FSGroup: &uid,
						SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
					},
					Containers: []corev1.Container{{
						Name:      "agent",
						Image:     o.Image,
						Args:      args,
						Ports:     cports,
						Resources: res,
						ReadinessProbe: &corev1.Probe{
							ProbeHandler:  corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromString("grpc")}},
							PeriodSeconds: 2,
						},
						SecurityContext: &corev1.SecurityContext{
							AllowPrivilegeEscalation: &no,
							ReadOnlyRootFilesystem:   &yes,
							Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
						},
						VolumeMounts: []corev1.VolumeMount{
							{Name: "tls", MountPath: K8sTLSDir, ReadOnly: true},
							{Name: "tmp", MountPath: "/tmp"}, // plans are unpacked here
						},
					}},
					Volumes: []corev1.Volume{
						{Name: "tls", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: o.TLSSecret}}},
						{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
					},
				},
			},
		},
	}
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "# loadcap agents: %d replicas of %s in namespace %s.\n", o.Replicas, o.Image, o.Namespace)
	fmt.Fprintf(&buf, "# The TLS Secret is referenced, not included; create it from `loadcap certs --out certs/ --host '*.%s.%s.svc'`:\n", o.Name, o.Namespace)
	fmt.Fprintf(&buf, "#   kubectl -n %s create secret generic %s --from-file=certs/%s --from-file=certs/%s --from-file=certs/%s\n",
		o.Namespace, o.TLSSecret, CAFile, AgentCertFile, AgentKeyFile)
	fmt.Fprintf(&buf, "# The coordinator (in the cluster) dials %s ... %s\n", K8sAgentAddrs(o)[0], K8sAgentAddrs(o)[o.Replicas-1])
	for _, obj := range []any{svc, job} {
		b, err := manifest(obj)
		if err != nil {
			return nil, fmt.Errorf("k8s agents: %w", err)
		}
		buf.WriteString("---\n")
		buf.Write(b)
	}
	return buf.Bytes(), nil
}

// manifest marshals a Kubernetes object without the fields Go's zero
// values add (status, creationTimestamp: null), which kubectl ignores but
// readers trip over.
func manifest(obj any) ([]byte, error) {
	j, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(j, &m); err != nil {
		return nil, err
	}
	delete(m, "status")
	prune(m)
	return yaml.Marshal(m)
}

// prune deletes null values, depth first; empty objects stay (emptyDir: {}).
func prune(v any) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if e == nil {
				delete(x, k)
			} else {
				prune(e)
			}
		}
	case []any:
		for _, e := range x {
			prune(e)
		}
	}
}
