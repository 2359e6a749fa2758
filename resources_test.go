package ferry

import "testing"

func TestParseMemory(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		err  bool
	}{
		{"64Mi", 64 << 20, false},
		{"1Gi", 1 << 30, false},
		{"1.5Gi", 3 << 29, false},
		{"500M", 500e6, false},
		{"33554432", 32 << 20, false},
		{"16Mi", 0, true}, // below the minimum
		{"", 0, true},
		{"Mi", 0, true},
		{"-1Gi", 0, true},
		{"1e9", 0, true},
		{"1 Gi", 0, true},
		{"lots", 0, true},
		{"9999999Ti", 0, true},
	} {
		got, err := ParseMemory(tc.in)
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("ParseMemory(%q) = %d, %v; want %d, error %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestParseMilliCPU(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
		err  bool
	}{
		{"1", 1000, false},
		{"0.5", 500, false},
		{"250m", 250, false},
		{"2", 2000, false},
		{"5m", 0, true},
		{"0", 0, true},
		{"-1", 0, true},
		{"1.5m", 0, true},
		{"one", 0, true},
		{"", 0, true},
	} {
		got, err := ParseMilliCPU(tc.in)
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("ParseMilliCPU(%q) = %d, %v; want %d, error %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestResourcesWithDefaults(t *testing.T) {
	got := Resources{Pids: 64}.WithDefaults()
	want := Resources{Memory: DefaultMemory, MilliCPU: DefaultMilliCPU, Pids: 64}
	if got != want {
		t.Errorf("WithDefaults() = %+v, want %+v", got, want)
	}
	if s := want.String(); s != "memory 512Mi, cpu 1, pids 64" {
		t.Errorf("String() = %q", s)
	}
}
