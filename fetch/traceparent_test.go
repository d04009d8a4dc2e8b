package fetch

import (
	"errors"
	"regexp"
	"testing"
)

func TestParseTraceparent(t *testing.T) {
	tc, err := ParseTraceparent(" 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01 ")
	if err != nil || tc.TraceID != "0af7651916cd43dd8448eb211c80319c" || tc.Flags != "01" {
		t.Fatalf("ParseTraceparent = %+v, %v", tc, err)
	}
	for _, bad := range []string{
		"", "00", "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", // another version
		"ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
		"00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01", // upper case
		"00-00000000000000000000000000000000-b7ad6b7169203331-01", // zero trace id
		"00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01", // zero parent id
		"00-0af7651916cd43dd8448eb211c80319-b7ad6b7169203331-01",  // short
		"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-x",
	} {
		if _, err := ParseTraceparent(bad); !errors.Is(err, ErrBadTraceparent) {
			t.Errorf("ParseTraceparent(%q) = %v, want ErrBadTraceparent", bad, err)
		}
	}
}

func TestNewTraceContext(t *testing.T) {
	a, err := NewTraceContext()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewTraceContext()
	if a.TraceID == b.TraceID {
		t.Error("two runs, one trace id")
	}
	re := regexp.MustCompile(`^00-[0-9a-f]{32}-[0-9a-f]{16}-01$`)
	s1, s2 := newSpanID(), newSpanID()
	if !re.MatchString(a.header(s1)) || s1 == s2 {
		t.Errorf("header %q, spans %s %s", a.header(s1), s1, s2)
	}
}
