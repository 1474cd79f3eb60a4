package capacity

import (
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// A service's request counter with status labels: its goodput leaves out
// the 5xx and 429 answers and the failed gRPC calls, its request rate (and
// so its fan-out) keeps them.
func TestServiceGoodputLeavesOutFailures(t *testing.T) {
	parse := func(text string) scrape {
		p := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := p.TextToMetricFamilies(strings.NewReader(text))
		if err != nil {
			t.Fatal(err)
		}
		return scrape{fams: fams}
	}
	before := parse("# TYPE http_requests_total counter\n" +
		`http_requests_total{code="200"} 0` + "\n" + `http_requests_total{code="503"} 0` + "\n" +
		`http_requests_total{code="429"} 0` + "\n" + `http_requests_total{code="404"} 0` + "\n")
	after := parse("# TYPE http_requests_total counter\n" +
		`http_requests_total{code="200"} 370` + "\n" + `http_requests_total{code="503"} 250` + "\n" +
		`http_requests_total{code="429"} 20` + "\n" + `http_requests_total{code="404"} 10` + "\n")
	st := serviceDelta([]MetricsSource{{Name: "api"}}, []scrape{before}, []scrape{after}, 1)[0]
	if st.RequestRate != 650 || st.GoodRate != 380 {
		t.Errorf("request rate %v, good rate %v; want 650 and 380 (200s and 404s)", st.RequestRate, st.GoodRate)
	}
	g0 := parse("# TYPE rpc_requests_total counter\n" + `rpc_requests_total{grpc_code="OK"} 0` + "\n" + `rpc_requests_total{grpc_code="Unavailable"} 0` + "\n")
	g1 := parse("# TYPE rpc_requests_total counter\n" + `rpc_requests_total{grpc_code="OK"} 90` + "\n" + `rpc_requests_total{grpc_code="Unavailable"} 30` + "\n")
	st = serviceDelta([]MetricsSource{{Name: "api"}}, []scrape{g0}, []scrape{g1}, 2)[0]
	if st.RequestRate != 60 || st.GoodRate != 45 {
		t.Errorf("gRPC: request rate %v, good rate %v; want 60 and 45", st.RequestRate, st.GoodRate)
	}
}
