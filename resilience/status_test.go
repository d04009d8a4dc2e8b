package resilience

import "testing"

func TestParseStatusSet(t *testing.T) {
	tests := []struct {
		in      string
		in1     []int
		out     []int
		wantErr bool
	}{
		{in: "408,425,429,500,502,503,504", in1: []int{408, 425, 429, 500, 502, 503, 504}, out: []int{404, 501, 200, 599}},
		{in: "5xx", in1: []int{500, 501, 599}, out: []int{499, 600, 200}},
		{in: "2XX, 404", in1: []int{200, 299, 404}, out: []int{300, 403}},
		{in: "500-502", in1: []int{500, 501, 502}, out: []int{499, 503}},
		{in: "200 - 204", in1: []int{200, 204}, out: []int{205}},
		{in: "", wantErr: true},
		{in: "abc", wantErr: true},
		{in: "99", wantErr: true},
		{in: "600", wantErr: true},
		{in: "6xx", wantErr: true},
		{in: "0xx", wantErr: true},
		{in: "504-500", wantErr: true},
		{in: "500,", wantErr: true},
		{in: "+50", wantErr: true},
	}
	for _, tt := range tests {
		set, err := ParseStatusSet(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseStatusSet(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			continue
		}
		for _, c := range tt.in1 {
			if !set.Contains(c) {
				t.Errorf("ParseStatusSet(%q) lacks %d", tt.in, c)
			}
		}
		for _, c := range tt.out {
			if set.Contains(c) {
				t.Errorf("ParseStatusSet(%q) contains %d", tt.in, c)
			}
		}
	}
}
