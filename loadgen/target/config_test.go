package target

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want []string // substrings of the error; none = valid
	}{
		{name: "zero value", cfg: Config{}},
		{name: "typical", cfg: Config{Listen: "127.0.0.1:8080", Workers: 8, ServiceTime: 10 * time.Millisecond, Dist: "exp", MaxQueue: 100}},
		{name: "stalls", cfg: Config{StallEvery: time.Second, StallFor: 100 * time.Millisecond}},
		{name: "negative workers", cfg: Config{Workers: -1}, want: []string{"workers: must be >= 0"}},
		{name: "negative service time", cfg: Config{ServiceTime: -time.Millisecond}, want: []string{"service-time: must be >= 0, got -1ms"}},
		{name: "unknown dist", cfg: Config{Dist: "normal"}, want: []string{`dist: must be "fixed" or "exp", got "normal"`}},
		{name: "queue without workers", cfg: Config{MaxQueue: 5}, want: []string{"max-queue: needs workers > 0"}},
		{name: "negative queue", cfg: Config{Workers: 1, MaxQueue: -5}, want: []string{"max-queue: must be >= 0"}},
		{name: "stall-for without every", cfg: Config{StallFor: time.Second}, want: []string{"stall-every: must be > 0 when stall-for is set"}},
		{name: "stall-every without for", cfg: Config{StallEvery: time.Second}, want: []string{"stall-for: must be > 0 when stall-every is set"}},
		{name: "stall longer than period", cfg: Config{StallEvery: time.Second, StallFor: time.Second}, want: []string{"stall-for: must be shorter than stall-every (1s >= 1s)"}},
		{name: "negative reset", cfg: Config{ResetEvery: -2}, want: []string{"reset-every: must be >= 0"}},
		{name: "error rate above 1", cfg: Config{ErrorRate: 1.5}, want: []string{"error-rate: must be a fraction in [0, 1], got 1.5"}},
		{name: "error rate NaN", cfg: Config{ErrorRate: math.NaN()}, want: []string{"error-rate: must be a fraction in [0, 1], got NaN"}},
		{name: "h2c and tls", cfg: Config{H2C: true, TLS: true}, want: []string{"h2c: cannot be combined with tls"}},
		{name: "listen without port", cfg: Config{Listen: "127.0.0.1"}, want: []string{`listen: "127.0.0.1" is not host:port`}},
		{name: "listen empty port", cfg: Config{Listen: "127.0.0.1:"}, want: []string{`listen: "127.0.0.1:" has no port`}},
		{
			name: "every problem at once",
			cfg:  Config{Workers: -1, ServiceTime: -1, Dist: "x", ResetEvery: -1, ErrorRate: -0.1},
			want: []string{"workers:", "service-time:", "dist:", "reset-every:", "error-rate:"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want errors %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to contain %q", err, w)
				}
			}
			if got := len(strings.Split(err.Error(), "\n")); got != len(tt.want) {
				t.Errorf("Validate() reported %d problems, want %d:\n%v", got, len(tt.want), err)
			}
		})
	}
}

func TestStartRejectsInvalidConfig(t *testing.T) {
	s, err := Start(Config{Workers: -3})
	if err == nil {
		s.Close()
		t.Fatal("Start accepted workers -3")
	}
	if !strings.Contains(err.Error(), "workers: must be >= 0") {
		t.Errorf("Start error = %q, want the validation message", err)
	}
}

func TestCapacityPerSec(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want float64
	}{
		{name: "4 workers 10ms", cfg: Config{Workers: 4, ServiceTime: 10 * time.Millisecond}, want: 400},
		{name: "8 workers 1.5ms", cfg: Config{Workers: 8, ServiceTime: 1500 * time.Microsecond}, want: 8 / 0.0015},
		{name: "unlimited workers", cfg: Config{ServiceTime: time.Millisecond}, want: math.Inf(1)},
		{name: "no service time", cfg: Config{Workers: 4}, want: math.Inf(1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.cfg.CapacityPerSec(); math.Abs(got-tt.want) > 1e-9*tt.want && got != tt.want {
				t.Errorf("CapacityPerSec() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestExpServiceTimes(t *testing.T) {
	s := &Server{cfg: Config{ServiceTime: 10 * time.Millisecond, Dist: DistExp}, svcKey: splitmix(42)}
	const n = 100000
	var sum, sumSq float64
	for i := int64(1); i <= n; i++ {
		v := s.serviceTime(i).Seconds()
		if v < 0 {
			t.Fatalf("negative service time %v", v)
		}
		sum += v
		sumSq += v * v
	}
	mean := sum / n
	cv := math.Sqrt(sumSq/n-mean*mean) / mean
	if math.Abs(mean-0.010)/0.010 > 0.02 {
		t.Errorf("mean service time = %.5fs, want 0.010s ±2%%", mean)
	}
	if math.Abs(cv-1) > 0.03 {
		t.Errorf("coefficient of variation = %.3f, want 1 (exponential) ±0.03", cv)
	}
	if a, b := s.serviceTime(17), s.serviceTime(17); a != b {
		t.Errorf("service time of request 17 not deterministic: %v then %v", a, b)
	}
}
