package shop

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// GenerationPath is where nginx, in front of the gateway, answers the
// generation of its configuration: 1 at the start, one more at every
// reload. A poll on a new connection that reads the generation written
// last reaches a worker of the reloaded nginx.
const GenerationPath = "/nginx/generation"

// LookNginx returns the nginx binary to front the gateway with: Debian's
// /usr/sbin/nginx, else nginx on PATH; "" when there is none.
func LookNginx() string {
	if fi, err := os.Stat("/usr/sbin/nginx"); err == nil && !fi.IsDir() {
		return "/usr/sbin/nginx"
	}
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	return ""
}

// nginx is an nginx master process in front of the gateway's replicas,
// with its own prefix, configuration, pid file, logs and temporary paths
// in a temporary directory. Its methods are not safe for concurrent use:
// the fleet serializes them.
type nginx struct {
	bin, dir, conf, addr string
	gen                  int
	cmd                  *exec.Cmd
	out                  strings.Builder // what the master wrote before its error log was open; read after exited
	exited               chan struct{}
	poll                 *http.Client
}

// startNginx starts bin listening on listen ("" picks a free loopback
// port) and proxying to backends (host:port), and returns once it answers
// the first generation.
func startNginx(ctx context.Context, bin, listen string, backends []string) (*nginx, error) {
	dir, err := os.MkdirTemp("", "loadcap-nginx-")
	if err != nil {
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		addr := listen
		if addr == "" {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				os.RemoveAll(dir)
				return nil, err
			}
			addr = ln.Addr().String()
			ln.Close()
		} else if err := loopback(addr); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		n := &nginx{bin: bin, dir: dir, conf: filepath.Join(dir, "nginx.conf"), addr: addr,
			poll: &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}}
		err := n.start(ctx, backends)
		if err == nil {
			return n, nil
		}
		if listen != "" || attempt == 3 { // a picked port may be taken between the probe and the bind
			os.RemoveAll(dir)
			return nil, err
		}
	}
}

func (n *nginx) start(ctx context.Context, backends []string) error {
	n.gen = 1
	if err := n.write(backends); err != nil {
		return err
	}
	n.cmd = exec.Command(n.bin, "-p", n.dir, "-c", n.conf, "-e", filepath.Join(n.dir, "error.log"), "-g", "daemon off;")
	n.cmd.Stdout, n.cmd.Stderr = &n.out, &n.out
	// Its own process group, so that workers left by a dead master go
	// with the group at stop.
	n.cmd.SysProcAttr = nginxProcAttr()
	if err := n.cmd.Start(); err != nil {
		return fmt.Errorf("nginx: %w", err)
	}
	n.exited = make(chan struct{})
	go func() { _ = n.cmd.Wait(); close(n.exited) }()
	if err := n.await(ctx, 10*time.Second); err != nil {
		n.stop()
		log, _ := os.ReadFile(filepath.Join(n.dir, "error.log"))
		return fmt.Errorf("nginx on %s: %w\n%s%s", n.addr, err, n.out.String(), log)
	}
	return nil
}

// write writes the configuration for backends, atomically: a reload reads
// the old file or the new one, never half of one.
func (n *nginx) write(backends []string) error {
	var b strings.Builder
	if os.Geteuid() == 0 {
		// As root the workers would run as nobody, who cannot write into
		// the directory.
		b.WriteString("user root;\n")
	}
	fmt.Fprintf(&b, `worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path %[1]s/client_body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  upstream gateway {
    least_conn;
`, n.dir)
	for _, a := range backends {
		fmt.Fprintf(&b, "    server %s max_fails=0;\n", a)
	}
	fmt.Fprintf(&b, `    keepalive 32;
  }
  server {
    listen %s;
    location = %s { default_type text/plain; return 200 "%d\n"; }
    location / {
      proxy_pass http://gateway;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
    }
  }
}
`, n.addr, GenerationPath, n.gen)
	tmp, err := os.CreateTemp(n.dir, ".nginx.conf.*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.WriteString(tmp, b.String()); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), n.conf)
}

// reload points nginx at backends: it rewrites the configuration, runs
// `nginx -s reload` on it and waits until a new connection answers the new
// generation. Requests in flight finish on the old workers.
func (n *nginx) reload(ctx context.Context, backends []string) error {
	old := n.accepting()
	n.gen++
	if err := n.write(backends); err != nil {
		return fmt.Errorf("nginx: write %s: %w", n.conf, err)
	}
	out, err := exec.CommandContext(ctx, n.bin, "-p", n.dir, "-c", n.conf, "-e", filepath.Join(n.dir, "error.log"), "-s", "reload").CombinedOutput()
	if err != nil {
		return fmt.Errorf("nginx -s reload: %w: %s", err, strings.TrimSpace(string(out)))
	}
	if err := n.await(ctx, 10*time.Second); err != nil {
		return err
	}
	// The new workers answer; until the old ones have closed their
	// listeners (they are then "shutting down", or gone), a new connection
	// may still reach one of them and the old upstreams.
	for deadline := time.Now().Add(10 * time.Second); ; {
		still := 0
		for pid := range n.accepting() {
			if old[pid] {
				still++
			}
		}
		if still == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nginx: %d old workers still accept connections 10 s after the reload", still)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// accepting returns the master's workers that accept connections: its
// children but those whose title says they are shutting down. Empty where
// /proc does not list children (then the generation alone tells).
func (n *nginx) accepting() map[int]bool { return n.workers(false) }

// workers returns the master's children, those shutting down included
// or not; nil where /proc does not list children.
func (n *nginx) workers(shuttingDown bool) map[int]bool {
	pid := n.cmd.Process.Pid
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return nil
	}
	out := map[int]bool{}
	for _, f := range strings.Fields(string(b)) {
		c, err := strconv.Atoi(f)
		if err != nil {
			continue
		}
		title, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", c))
		if err != nil || (!shuttingDown && strings.Contains(string(title), "shutting down")) {
			continue
		}
		out[c] = true
	}
	return out
}

// drained waits until the workers of before have exited (at most
// timeout): an old worker may still send a request in flight, or reuse a
// kept-alive connection, to an upstream it was configured with.
func (n *nginx) drained(before map[int]bool, timeout time.Duration) {
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		left := false
		for pid := range n.workers(true) {
			left = left || before[pid]
		}
		if !left {
			return
		}
	}
}

// await polls nginx until it answers the current generation.
func (n *nginx) await(ctx context.Context, timeout time.Duration) error {
	want := strconv.Itoa(n.gen)
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-n.exited:
			return errors.New("nginx exited")
		default:
		}
		if got, err := n.generation(ctx); err == nil && got == want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nginx did not answer generation %s within %v", want, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (n *nginx) generation(ctx context.Context) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.addr+GenerationPath, nil)
	if err != nil {
		return "", err
	}
	resp, err := n.poll.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64))
	return strings.TrimSpace(string(b)), err
}

// stop stops nginx: the master stops its workers; the group is killed
// after 5 s.
func (n *nginx) stop() {
	if n.cmd != nil && n.cmd.Process != nil {
		terminate(n.cmd.Process)
		select {
		case <-n.exited:
		case <-time.After(5 * time.Second):
		}
		killGroup(n.cmd.Process)
		<-n.exited
	}
}

// backend is one gateway replica behind nginx: a listener on a loopback
// port with its own limiter of one replica's capacity.
type backend struct {
	addr   string
	lim    *limiter
	srv    *http.Server
	served atomic.Uint64 // API requests
}

// fleet is the gateway's replicas as separate listeners behind nginx.
// scale records the replicas wanted; a loop brings the listeners to it:
// new ones start after the start-up delay, must answer /healthz, and join
// nginx's upstreams at a reload; removed ones leave the upstreams at a
// reload and then drain. A replica counts as ready once nginx answers the
// configuration that has it.
type fleet struct {
	c       Capacity
	seed    uint64
	handler func(*limiter) http.Handler // a replica's API
	log     *slog.Logger
	kick    chan struct{}
	done    chan struct{}
	ng      *nginx

	mu      sync.Mutex
	desired int
	startup time.Duration
	live    []*backend
	made    uint64
	refused uint64        // by replicas gone
	busy    time.Duration // by replicas gone
}

func newFleet(c Capacity, seed uint64, log *slog.Logger) *fleet {
	return &fleet{c: c, seed: seed, log: log, kick: make(chan struct{}, 1), done: make(chan struct{})}
}

// start starts n replicas and nginx in front of them on listen, then the
// loop that follows scale until ctx ends.
func (f *fleet) start(ctx context.Context, bin, listen string, n int) (string, error) {
	var addrs []string
	for range n {
		b, err := f.newBackend(ctx)
		if err != nil {
			f.shutdown(f.live)
			return "", err
		}
		f.live = append(f.live, b)
		addrs = append(addrs, b.addr)
	}
	f.desired = n
	ng, err := startNginx(ctx, bin, listen, addrs)
	if err != nil {
		f.shutdown(f.live)
		return "", err
	}
	f.ng = ng
	go f.run(ctx)
	return ng.addr, nil
}

// newBackend starts a replica and waits until it answers.
func (f *fleet) newBackend(ctx context.Context) (*backend, error) {
	ln, err := listen("")
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	b := &backend{addr: ln.Addr().String(), lim: newReplicas(f.c, f.seed+f.made<<20, 1)}
	f.made++
	f.mu.Unlock()
	api := f.handler(b.lim)
	b.srv = &http.Server{ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasPrefix(r.URL.Path, "/api/") {
				b.served.Add(1)
			}
			api.ServeHTTP(w, r)
		})}
	go b.srv.Serve(ln)
	c := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for deadline := time.Now().Add(5 * time.Second); ; {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+b.addr+"/healthz", nil)
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return b, nil
			}
			err = fmt.Errorf("healthz: %s", resp.Status)
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			b.srv.Close()
			return nil, fmt.Errorf("gateway replica %s does not answer: %w", b.addr, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (f *fleet) capacity() Capacity { return f.c }

func (f *fleet) replicas() Replicas {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := Replicas{Desired: f.desired, Ready: len(f.live)}
	for _, b := range f.live {
		r.Backends = append(r.Backends, Backend{Addr: b.addr, Requests: b.served.Load()})
	}
	return r
}

func (f *fleet) load() (int64, uint64, time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	waiting, refused, busy := int64(0), f.refused, f.busy
	for _, b := range f.live {
		w, r, bz := b.lim.load()
		waiting, refused, busy = waiting+w, refused+r, busy+bz
	}
	return waiting, refused, busy
}

func (f *fleet) scale(n int, startup time.Duration) error {
	if n < 1 || n > MaxReplicas {
		return fmt.Errorf("replicas %d: want 1 to %d", n, MaxReplicas)
	}
	f.mu.Lock()
	f.desired, f.startup = n, startup
	f.mu.Unlock()
	select {
	case f.kick <- struct{}{}:
	default: // a kick is pending already
	}
	return nil
}

// run brings the live replicas to the desired ones after every kick.
func (f *fleet) run(ctx context.Context) {
	defer close(f.done)
	for {
		select {
		case <-ctx.Done():
			return
		case <-f.kick:
		}
		for ctx.Err() == nil {
			f.mu.Lock()
			want, have, startup := f.desired, len(f.live), f.startup
			f.mu.Unlock()
			if want == have {
				break
			}
			if want > have {
				sleepCtx(ctx, startup) // the new replicas start up
				f.mu.Lock()
				want = f.desired
				f.mu.Unlock()
				if want == have {
					continue
				}
			}
			if err := f.resize(ctx, want); err != nil {
				if ctx.Err() == nil {
					f.log.Error("gateway: scale behind nginx", "replicas", want, "err", err)
				}
				break // until the next kick
			}
		}
	}
}

// resize makes want replicas live and reloads nginx with them.
func (f *fleet) resize(ctx context.Context, want int) error {
	f.mu.Lock()
	live := append([]*backend(nil), f.live...)
	f.mu.Unlock()
	next, gone := live, []*backend(nil)
	if want < len(live) {
		next, gone = live[:want], live[want:]
	}
	var added []*backend
	for len(next) < want {
		b, err := f.newBackend(ctx)
		if err != nil {
			f.shutdown(added)
			return err
		}
		added = append(added, b)
		next = append(next, b)
	}
	addrs := make([]string, len(next))
	for i, b := range next {
		addrs[i] = b.addr
	}
	old := f.ng.workers(true)
	if err := f.ng.reload(ctx, addrs); err != nil {
		f.shutdown(added)
		return err
	}
	f.mu.Lock()
	f.live = next
	for _, b := range gone {
		_, r, bz := b.lim.load()
		f.refused, f.busy = f.refused+r, f.busy+bz
	}
	f.mu.Unlock()
	f.log.Info("gateway: nginx reloaded", "replicas", want, "generation", f.ng.gen)
	// Out of nginx's upstreams now: they stop once the old workers, which
	// may still send them a request, are gone.
	if len(gone) > 0 {
		go func() { f.ng.drained(old, 5*time.Second); f.shutdown(gone) }()
	}
	return nil
}

// shutdown stops bs, letting their requests in flight end (up to 5 s).
func (f *fleet) shutdown(bs []*backend) {
	for _, b := range bs {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if b.srv.Shutdown(ctx) != nil {
			b.srv.Close()
		}
		cancel()
	}
}

// close stops the loop (its context has ended), nginx and the replicas.
func (f *fleet) close() {
	if f.ng == nil {
		return
	}
	<-f.done
	f.ng.stop()
	os.RemoveAll(f.ng.dir)
	f.mu.Lock()
	live := f.live
	f.mu.Unlock()
	f.shutdown(live)
}
