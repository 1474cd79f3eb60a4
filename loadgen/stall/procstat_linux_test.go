package stall

import "testing"

func TestParseStat(t *testing.T) {
	b := []byte("cpu  1609872 8562 317083 3155596 6985 0 60098 84199 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n")
	s, tot, ok := parseStat(b)
	if !ok || s != 84199 || tot != 1609872+8562+317083+3155596+6985+0+60098+84199 {
		t.Errorf("steal %d total %d ok %v", s, tot, ok)
	}
	for _, bad := range []string{"", "intr 1 2 3", "cpu 1 2 3", "cpu 1 2 3 4 5 6 7 x"} {
		if _, _, ok := parseStat([]byte(bad)); ok {
			t.Errorf("%q parsed", bad)
		}
	}
}
