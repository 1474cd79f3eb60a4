package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/loadcap/loadcap/internal/capture"
	"github.com/loadcap/loadcap/internal/cli"
	"github.com/loadcap/loadcap/loadgen"
	"github.com/loadcap/loadcap/loadgen/cluster"
	"github.com/loadcap/loadcap/reports"
	"github.com/loadcap/loadcap/scenarios"
)

// clusterFlags are run's distributed-mode flags.
type clusterFlags struct {
	agents         []string
	sequence       string
	segment        string
	cert, key, ca  string
	insecure       bool
	prepareTimeout time.Duration
}

func (c *clusterFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringSliceVar(&c.agents, "agents", nil, "run on these agents (host:port, loadcap agent) instead of locally")
	fl.StringVar(&c.sequence, "execution-segment-sequence", "", `with --agents: k6 segment sequence, one segment per agent ("0,1/4,1"); default an even split`)
	fl.StringVar(&c.segment, "execution-segment", "", `with --agents: run only this part of the load ("0:1/2") over these agents, one segment each of --execution-segment-sequence, which lists every coordinator's agents; loadcap merge adds the coordinators' results up`)
	fl.StringVar(&c.cert, "tls-cert", "", "with --agents: the coordinator's client certificate (loadcap certs: coordinator.pem)")
	fl.StringVar(&c.key, "tls-key", "", "with --agents: its key (coordinator-key.pem)")
	fl.StringVar(&c.ca, "ca", "", "with --agents: the CA the agents' certificates chain to (ca.pem)")
	fl.BoolVar(&c.insecure, "insecure-agents", false, "with --agents: plaintext, no certificates (only when every agent is on loopback)")
	fl.DurationVar(&c.prepareTimeout, "prepare-timeout", 0, "with --agents: how long agents get to prepare (default 30s)")
}

func newAgentCmd(st *state) *cobra.Command {
	var (
		cfg      cluster.AgentConfig
		partsDir string
	)
	cmd := &cobra.Command{
		Use:   "agent --listen ADDR --tls-cert agent.pem --tls-key agent-key.pem --client-ca ca.pem --allow-target CIDRS,HOSTS",
		Short: "Serve as a load agent for `loadcap run --agents` (mutual TLS; sends only to its allow list)",
		Long: `Serve a coordinator's plans over gRPC with mutual TLS: a coordinator must present a certificate
signed by --client-ca. The agent refuses any plan whose target or request hosts fall outside
--allow-target (hosts and CIDR ranges; loopback only when none is given), stops generating
within 5 s when its coordinator goes away, and never logs secret header values. A k6 script's
archive runs in the agent's k6 child with --blacklist-ip set to every range outside the allow
list, with load-shaping k6 flags only, without the agent's environment variables, reading files
from the archive only; k6/browser fails to load, however the script names it. A scenario file
may read only the files shipped beside it.`,
		Example: `  loadcap certs --out certs/
  loadcap agent --listen 127.0.0.1:7070 --tls-cert certs/agent.pem --tls-key certs/agent-key.pem --client-ca certs/ca.pem`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfg.Listen == "" {
				return usageErr("--listen is required")
			}
			cfg.Logger = slog.New(slog.NewTextHandler(st.stderr, nil))
			cfg.Replay = agentReplay
			if partsDir != "" {
				if err := os.MkdirAll(partsDir, 0o755); err != nil {
					return cli.WithCode(cli.ExitUsage, fmt.Errorf("--parts-dir: %w", err))
				}
				cfg.OnPart = func(p cluster.Part) { writePart(st, partsDir, p) }
			}
			cfg.OnListen = func(agent, metrics string) {
				fmt.Fprintf(st.stderr, "agent serving on %s", agent)
				if metrics != "" {
					fmt.Fprintf(st.stderr, ", metrics on http://%s/metrics", metrics)
				}
				fmt.Fprintln(st.stderr)
			}
			stop := st.stopper(cmd.Context(), "the agent stops its runs and serving")
			defer stop.Close()
			err := stop.Wait(func() error { return cluster.ServeAgent(stop.Context(), cfg) })
			if errors.Is(err, cli.ErrStoppedAtOnce) {
				return err
			}
			if err != nil && !errors.Is(err, context.Canceled) {
				return cli.WithCode(cli.ExitUsage, err)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&cfg.Listen, "listen", "", "host:port to serve on")
	fl.StringVar(&cfg.CertFile, "tls-cert", "", "the agent's certificate (loadcap certs: agent.pem)")
	fl.StringVar(&cfg.KeyFile, "tls-key", "", "its key (agent-key.pem)")
	fl.StringVar(&cfg.ClientCAFile, "client-ca", "", "the CA coordinators' certificates must chain to (ca.pem)")
	fl.BoolVar(&cfg.Insecure, "insecure", false, "plaintext without client certificates (only on a loopback --listen)")
	fl.StringSliceVar(&cfg.AllowTargets, "allow-target", nil, "hosts and CIDR ranges this agent may send to (default: loopback only)")
	fl.StringSliceVar(&cfg.SecretHeaders, "secret-header", nil, "more header names whose values are never logged")
	fl.StringVar(&cfg.MetricsListen, "metrics-listen", "", "serve live Prometheus metrics on this address")
	fl.StringVar(&partsDir, "parts-dir", "", "write this agent's own result of every run as RUNID-SEGMENT.json here (loadcap merge adds parts up)")
	return cmd
}

// writePart writes an agent's part of a run as a run.json in dir; a
// failure is logged, the run goes on.
func writePart(st *state, dir string, p cluster.Part) {
	m := meta(p.File)
	m.File = p.Scenario
	seg := strings.NewReplacer("/", "_", ":", "-").Replace(p.Segment.String())
	path := filepath.Join(dir, p.RunID+"-"+seg+".json")
	if err := reports.NewRun(p.Result, m).WriteFile(path); err != nil {
		fmt.Fprintf(st.stderr, "agent: run %s: %v\n", p.RunID, err)
	}
}

// agentReplay opens a prepared plan's recording on an agent.
func agentReplay(f *scenarios.File) (loadgen.ReplaySource, []string, error) {
	src, err := capture.NewReplaySource(f, capture.ReplayConfig{})
	if err != nil {
		return nil, nil, err
	}
	return src, src.Hosts(), nil
}

func newCertsCmd(st *state) *cobra.Command {
	var (
		out   string
		hosts []string
	)
	cmd := &cobra.Command{
		Use:   "certs --out DIR [--host NAME ...]",
		Short: "Write a CA and agent/coordinator certificates for a quick start with mutual TLS",
		Long: `Write ca.pem/ca-key.pem, agent.pem/agent-key.pem (for localhost, 127.0.0.1, ::1 and each --host,
e.g. '*.loadcap-agents.default.svc' for loadcap k8s agents) and coordinator.pem/coordinator-key.pem.
Existing files are never overwritten. For production, issue certificates from your own PKI.`,
		Args: args(cobra.NoArgs),
		RunE: func(_ *cobra.Command, _ []string) error {
			if out == "" {
				return usageErr("--out is required")
			}
			if err := cluster.WriteCerts(out, hosts...); err != nil {
				return err
			}
			fmt.Fprintf(st.stdout, "wrote ca.pem, agent.pem, coordinator.pem and their keys to %s\n", out)
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "directory to write into")
	cmd.Flags().StringSliceVar(&hosts, "host", nil, "more names or IPs for the agent certificate")
	return cmd
}

func newK8sCmd(st *state) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "k8s",
		Short: "Kubernetes manifests: the agents as an Indexed Job with a headless Service",
		Args:  args(cobra.NoArgs),
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	var o cluster.K8sOptions
	agents := &cobra.Command{
		Use:   "agents --replicas N --image IMAGE --allow-target CIDRS",
		Short: "Write the agents' manifests (Indexed Job + headless Service + TLS Secret reference) to stdout",
		Example: `  loadcap certs --out certs/ --host '*.loadcap-agents.default.svc'
  kubectl create secret generic loadcap-agents-tls --from-file=certs/ca.pem --from-file=certs/agent.pem --from-file=certs/agent-key.pem
  loadcap k8s agents --replicas 20 --image registry/loadcap:v1 --allow-target 10.20.0.0/16 > agents.yaml`,
		Args: args(cobra.NoArgs),
		RunE: func(_ *cobra.Command, _ []string) error {
			b, err := cluster.K8sAgents(o)
			if err != nil {
				return cli.WithCode(cli.ExitUsage, err)
			}
			if _, err := st.stdout.Write(b); err != nil {
				return err
			}
			fmt.Fprintf(st.stderr, "# agent addresses for run --agents: %v\n", cluster.K8sAgentAddrs(o))
			return nil
		},
	}
	fl := agents.Flags()
	fl.IntVar(&o.Replicas, "replicas", 0, "number of agents")
	fl.StringVar(&o.Image, "image", "", "the loadcap container image")
	fl.StringSliceVar(&o.AllowTargets, "allow-target", nil, "the agents' --allow-target (hosts, CIDR ranges)")
	fl.StringVar(&o.Name, "name", cluster.DefaultK8sName, "Job and Service name")
	fl.StringVar(&o.Namespace, "namespace", cluster.DefaultK8sNamespace, "namespace")
	fl.IntVar(&o.Port, "port", cluster.DefaultAgentPort, "agent gRPC port")
	fl.IntVar(&o.MetricsPort, "metrics-port", 0, "agent metrics port (0: the default, -1: none)")
	fl.StringVar(&o.TLSSecret, "tls-secret", "", "Secret with ca.pem, agent.pem, agent-key.pem (default NAME-tls)")
	fl.DurationVar(&o.ActiveDeadline, "active-deadline", 0, "end the agents after this long (default 2h)")
	fl.StringVar(&o.CPU, "cpu", "", "CPU per agent, e.g. 2")
	fl.StringVar(&o.Memory, "memory", "", "memory per agent, e.g. 1Gi")
	cmd.AddCommand(agents)
	return cmd
}

// coordinatorConfig is the coordinator's configuration from the --agents
// flags: warnings to stderr, progress there too unless quiet.
func (c *clusterFlags) coordinatorConfig(st *state, quiet bool) cluster.CoordinatorConfig {
	cfg := cluster.CoordinatorConfig{
		Agents: c.agents, Sequence: c.sequence, Segment: c.segment, CertFile: c.cert, KeyFile: c.key, CAFile: c.ca,
		Insecure: c.insecure, PrepareTimeout: c.prepareTimeout,
		Logger: slog.New(slog.NewTextHandler(st.stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	if !quiet {
		cfg.Progress, cfg.Live = st.stderr, st.tty
	}
	return cfg
}
