package cluster

import (
	"strings"
	"testing"
)

// A coordinator that runs part of a wider load gives its agents the
// segments of the shared sequence within its part; anything that would
// not add up with the other coordinators' parts is refused.
func TestSegmentsOfAPart(t *testing.T) {
	const seq = "0,1/4,1/2,3/4,1"
	tests := []struct {
		name, seq, part string
		agents          int
		want            []string // segments, or the error's words
		err             bool
	}{
		{name: "whole run", seq: "", agents: 2, want: []string{"0:1/2", "1/2:1"}},
		{name: "first half", seq: seq, part: "0:1/2", agents: 2, want: []string{"0:1/4", "1/4:1/2"}},
		{name: "second half", seq: seq, part: "1/2:1", agents: 2, want: []string{"1/2:3/4", "3/4:1"}},
		{name: "decimals", seq: seq, part: "0.25:0.75", agents: 2, want: []string{"1/4:1/2", "1/2:3/4"}},
		{name: "no sequence", part: "0:1/2", agents: 2, err: true, want: []string{"sequence of every coordinator"}},
		{name: "not on a boundary", seq: seq, part: "0:1/3", agents: 1, err: true, want: []string{"not a run of whole segments"}},
		{name: "agents and segments differ", seq: seq, part: "0:1/2", agents: 3, err: true, want: []string{"2 segments", "3 agents"}},
		{name: "backwards", seq: seq, part: "1/2:0", agents: 2, err: true, want: []string{"from:to"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			segs, err := segmentsOf(tt.seq, tt.part, tt.agents)
			if tt.err {
				if err == nil {
					t.Fatalf("got %v, want an error", segs)
				}
				for _, w := range tt.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not say %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, s := range segs {
				got = append(got, s.String())
			}
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Errorf("segments %v, want %v", got, tt.want)
			}
		})
	}
}
