package shadow

import (
	"strings"
	"testing"
)

// FuzzQuietAgreesWithScan: the light pass that lets untagged work skip the
// full tag scan (quietNames, quietMap) never calls quiet what the
// full scan finds tagged, refused, or a near-miss. The input is lines of
// name=value, a header each.
func FuzzQuietAgreesWithScan(f *testing.F) {
	for _, seed := range []string{
		"User-Agent=loadcap\nAccept=application/json",
		"Baggage=tenant=acme,user=alice\nTraceparent=00-4bf9-01",
		"Baggage=tenant=acme,loadcap.shadow=d1",
		"baggage=LOADCAP.SHADOW=d1",
		"BAGGAGE=loadcap_shadow=d1\nbaggage=tenant=w",
		"X-Loadcap-Shadow=d1",
		"x-loadcap-shadow=d1\nbaggage=tenant=acme",
		"X_loadcap_shadow=d1",
		"x.loadcap.shadow=d1",
		"Loadcap-Shadow=d1",
		"XLoadcapShadow=",
		"X-Loadcap-Shadow-Reject=r\nloadcap.shadowy=x",
		"Baggage=%zz,loadcap.shadow",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		// Lists of values (http.Header, gRPC metadata, HeaderCarrier) and
		// one value each (the MapCarriers).
		lists, ms := map[string][]string{}, map[string]string{}
		for _, line := range strings.Split(s, "\n") {
			k, v, _ := strings.Cut(line, "=")
			lists[k] = append(lists[k], v)
			ms[k] = v
		}
		bad := func(kind string, tagVals, bagVals []string, near string) {
			t.Helper()
			_, found, err := tagFrom(tagVals, bagVals)
			if found || err != nil || near != "" {
				t.Fatalf("%s quiet for %q, but the full scan finds: tag %v, baggage %v, near-miss %q (found %v, err %v)",
					kind, s, tagVals, bagVals, near, found, err)
			}
		}
		if quietNames(lists) {
			tagVals, bagVals, near := scanNames(lists)
			bad("headers", tagVals, bagVals, near)
		}
		if quietMap(ms) {
			tagVals, bag, near := mapTag(ms)
			bad("MapCarrier", tagVals, oneVal(bag), near)
		}
	})
}

// oneVal is Extract's baggage: none, or the one value.
func oneVal(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}
