// Package verify checks a capacity plan against the system it plans: it
// scales every service to the plan's replicas through a Scaler, waits
// until they are ready, drives the planned peak (and a margin above it),
// and compares what the plan predicted with what the services' own
// metrics measured. It also takes one replica of each service away and
// drives the peak again: the redundancy the plan claims.
package verify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"
)

// A Scaler sets a service's replicas and reports how many are ready.
type Scaler interface {
	// Scale asks for replicas of service; it need not wait for them.
	Scale(ctx context.Context, service string, replicas int) error
	// Ready is the replicas of service ready to serve now.
	Ready(ctx context.Context, service string) (int, error)
}

// WaitReady polls s until every service in want has its replicas ready,
// or the context or timeout ends.
func WaitReady(ctx context.Context, s Scaler, want map[string]int, timeout time.Duration, progress io.Writer) error {
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		var behind []string
		for name, n := range want {
			got, err := s.Ready(ctx, name)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			if got != n {
				behind = append(behind, fmt.Sprintf("%s %d/%d", name, got, n))
			}
		}
		if len(behind) == 0 {
			return nil
		}
		slices.Sort(behind)
		line := "waiting for replicas: " + strings.Join(behind, ", ")
		if progress != nil && line != last {
			fmt.Fprintln(progress, line)
			last = line
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("replicas not ready after %v: %s", timeout, strings.Join(behind, ", "))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// HTTPScaler scales the reference shop (and any service with the same
// endpoint): GET URL answers {"desired":N,"ready":M}, POST URL?n=N scales.
// URLs maps a service to its endpoint.
type HTTPScaler struct {
	URLs   map[string]string
	Client *http.Client
}

func (h *HTTPScaler) url(service string) (string, error) {
	u, ok := h.URLs[service]
	if !ok {
		return "", fmt.Errorf("no scaling endpoint for service %q", service)
	}
	return u, nil
}

func (h *HTTPScaler) client() *http.Client {
	if h.Client != nil {
		return h.Client
	}
	return &http.Client{Timeout: 10 * time.Second}
}

// Scale implements Scaler.
func (h *HTTPScaler) Scale(ctx context.Context, service string, replicas int) error {
	u, err := h.url(service)
	if err != nil {
		return err
	}
	sep := "?"
	if strings.Contains(u, "?") {
		sep = "&"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u+sep+"n="+strconv.Itoa(replicas), nil)
	if err != nil {
		return err
	}
	_, err = h.do(req)
	return err
}

// Ready implements Scaler.
func (h *HTTPScaler) Ready(ctx context.Context, service string) (int, error) {
	u, err := h.url(service)
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	r, err := h.do(req)
	return r.Ready, err
}

func (h *HTTPScaler) do(req *http.Request) (struct{ Desired, Ready int }, error) {
	var r struct{ Desired, Ready int }
	resp, err := h.client().Do(req)
	if err != nil {
		return r, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return r, fmt.Errorf("%s %s: %s: %s", req.Method, req.URL.Redacted(), resp.Status, bytes.TrimSpace(body))
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return r, fmt.Errorf("%s %s: %v", req.Method, req.URL.Redacted(), err)
	}
	return r, nil
}

// CmdScaler runs a command to scale, for VMs, Nomad or Compose: Scale runs
// ScaleCmd with {service} and {replicas} replaced; Ready runs ReadyCmd with
// {service} replaced and reads the number it prints. Without ReadyCmd a
// service counts as ready at the replicas its last successful Scale asked
// for: the scale command must then wait until they serve. The commands run
// through sh -c; the service names come from the plan, and only names of
// letters, digits, '-', '_' and '.' are passed.
type CmdScaler struct {
	ScaleCmd, ReadyCmd string
	Stderr             io.Writer
	asked              map[string]int
}

var errName = errors.New("service name: want letters, digits, '-', '_' and '.' only")

func safeName(s string) error {
	if s == "" {
		return errName
	}
	for _, r := range s {
		if !(r == '-' || r == '_' || r == '.' || (r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z')) {
			return fmt.Errorf("%q: %w", s, errName)
		}
	}
	return nil
}

func (c *CmdScaler) run(ctx context.Context, tmpl, service string, replicas int) (string, error) {
	if err := safeName(service); err != nil {
		return "", err
	}
	line := strings.NewReplacer("{service}", service, "{replicas}", strconv.Itoa(replicas)).Replace(tmpl)
	cmd := exec.CommandContext(ctx, "sh", "-c", line)
	var out bytes.Buffer
	cmd.Stdout = &out
	if c.Stderr != nil {
		cmd.Stderr = c.Stderr
	}
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s: %w", line, err)
	}
	return out.String(), nil
}

// Scale implements Scaler.
func (c *CmdScaler) Scale(ctx context.Context, service string, replicas int) error {
	if _, err := c.run(ctx, c.ScaleCmd, service, replicas); err != nil {
		return err
	}
	if c.asked == nil {
		c.asked = map[string]int{}
	}
	c.asked[service] = replicas
	return nil
}

// Ready implements Scaler.
func (c *CmdScaler) Ready(ctx context.Context, service string) (int, error) {
	if c.ReadyCmd == "" {
		n, ok := c.asked[service]
		if !ok {
			return 0, fmt.Errorf("%s: not scaled yet and no ready command to ask", service)
		}
		return n, nil
	}
	out, err := c.run(ctx, c.ReadyCmd, service, 0)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil {
		return 0, fmt.Errorf("ready command for %s printed %q: want a number of replicas", service, strings.TrimSpace(out))
	}
	return n, nil
}
