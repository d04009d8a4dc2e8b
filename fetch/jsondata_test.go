package fetch

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// reportLine is the report of a run that served body, as WriteJSON writes
// it with bodies from min bytes on streamed.
func reportLine(t testing.TB, body []byte, min int64) []byte {
	t.Helper()
	old := streamDataMin
	streamDataMin = min
	defer func() { streamDataMin = old }()
	req := &Request{Method: "GET", URL: &url.URL{Scheme: "https", Host: "example.com", Path: "/x"}}
	rep := NewReport(req, &Result{Source: SourceNetwork, Status: 200}, bytes.NewReader(body), Outcome{})
	var out bytes.Buffer
	if err := rep.WriteJSON(&out); err != nil {
		t.Fatalf("WriteJSON: %v", err)
	}
	return out.Bytes()
}

// sameData checks that streaming body gives the report setData gives
// from memory, byte for byte.
func sameData(t testing.TB, body []byte) {
	t.Helper()
	want := reportLine(t, body, 1<<62)
	got := reportLine(t, body, 0)
	if !bytes.Equal(got, want) {
		t.Fatalf("body %q:\nstreamed  %s\nin memory %s", trunc(body), trunc(got), trunc(want))
	}
}

func trunc(b []byte) []byte {
	if len(b) > 200 {
		return append(b[:200:200], "..."...)
	}
	return b
}

func TestStreamedDataMatchesMemory(t *testing.T) {
	cases := []string{
		"", " ", "\n\t ", "{}", " {} ", "\u00a0{}\u00a0", "\u0085[1]\u2028", "\u2028", "\u3000x\u3000",
		`{"a" : [1, 2 ,3], "b":{"c" :"d e\tf"}}`, "123", " -0.5e+10 ", "01", "1 2", "-", "1.", "1e", "1e+",
		`"\u12"`, `"\u00e9"`, "\"a\x01b\"", "\"tab\there\"", "nul\x00byte", "\x00\x00\x00", "<>&", `"<>&"`,
		"\xff", "a\xffb", "\xe2\x80", "x\xe2\x80", "{\"k\":\"\xff\"}", "tru", "true", "true ", "nul", "null",
		"fals", "false", "[", "]", "[1,]", "{\"a\":}", "{\"a\" 1}", "{,}", "[1 2]", `{"a":1,}`, `[[[]]]`,
		"\"\u2028\"", `"a\"b"`, `"a\\"`, `"\/"`, `"\q"`, "\xef\xbb\xbf{}", "{}\n\n", "  \"s\"  ",
		"0", "-0", "0.0", "0e0", "1E-7", "[-1,0.5e3]", "{\"\":\"\"}", "\r\n{\r\n}\r\n", "\v{}\f",
	}
	for _, c := range cases {
		sameData(t, []byte(c))
	}
	// Nesting: json.Valid allows 10000 levels, not 10001.
	for _, depth := range []int{9999, 10000, 10001} {
		sameData(t, []byte(strings.Repeat("[", depth)+strings.Repeat("]", depth)))
		sameData(t, []byte(strings.Repeat(`{"a":`, depth)+"1"+strings.Repeat("}", depth)))
	}
}

// TestStreamedDataChunkEdges puts multi-byte runes, escapes and white
// space across the 64 KiB reads and the 4 KiB backward reads.
func TestStreamedDataChunkEdges(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	pieces := []string{"é", "€", "𝄞", " ", "\u00a0", "\u2028", "\n", "\\", `"`, "a", "<", "\x00", "{", "}", "[", "]", ",", ":", "1"}
	for i := 0; i < 20; i++ {
		var b strings.Builder
		for b.Len() < 150<<10 {
			b.WriteString(pieces[rng.IntN(len(pieces))])
		}
		sameData(t, []byte(b.String()))
	}
	// Valid JSON and valid strings across the edges, with long white
	// space tails of multi-byte spaces.
	for _, pad := range []int{0, 1, 2, 3, 4095, 4096, 4097} {
		var b strings.Builder
		b.WriteString("  [")
		for b.Len() < 70<<10 {
			b.WriteString(`"é€𝄞 \"x\u00e9", 1 , `)
		}
		b.WriteString("2]")
		b.WriteString(strings.Repeat("\u3000", pad))
		sameData(t, []byte(b.String()))
		s := strings.Repeat("x€", 70<<10/4) + strings.Repeat("\u00a0", pad)
		sameData(t, []byte(s))
		sameData(t, []byte(strings.Repeat("\u2003", pad)+"{}"+strings.Repeat(" ", pad)))
		sameData(t, append(bytes.Repeat([]byte{0}, 70<<10+pad), 0xe2, 0x80))
	}
}

func FuzzStreamedData(f *testing.F) {
	for _, s := range []string{"{}", " [1, \"a b\"] ", "\u00a0x", "\xff", `"\u00e9"`, "1e5", "\u2028{}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var v jsonValidator
		ok := true
		for _, c := range body {
			if !v.step(c) {
				ok = false
				break
			}
		}
		if got, want := ok && v.end(), json.Valid(body); got != want {
			t.Fatalf("validator says %v, json.Valid %v, for %q", got, want, body)
		}
		sameData(t, body)
	})
}

// TestStreamedDataMemoryFlat checks that a large body's data field is
// written without holding the body: 32 MiB of NUL bytes (each escaped to
// six bytes) allocate a small fraction of the body's size.
func TestStreamedDataMemoryFlat(t *testing.T) {
	path := filepath.Join(t.TempDir(), "body")
	const size = 32 << 20
	if err := os.WriteFile(path, make([]byte, size), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, body := range []string{"nul", "json"} {
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		if body == "json" {
			// One long JSON array: compacted, not escaped.
			b := bytes.Repeat([]byte("1, "), size/3)
			b[0], b[len(b)-2] = '[', ']'
			if _, err := f.WriteAt(b, 0); err != nil {
				t.Fatal(err)
			}
		}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		req := &Request{Method: "GET", URL: &url.URL{Scheme: "https", Host: "example.com", Path: "/x"}}
		rep := NewReport(req, &Result{Source: SourceNetwork, Status: 200}, f, Outcome{})
		var n countingWriter
		if err := rep.WriteJSON(&n); err != nil {
			t.Fatal(err)
		}
		runtime.ReadMemStats(&after)
		f.Close()
		if n == 0 || rep.streamed == nil {
			t.Fatalf("%s: body not streamed (%d bytes written)", body, n)
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > size/8 {
			t.Errorf("%s: writing the report of a %d-byte body allocated %d bytes", body, size, alloc)
		}
	}
}

type countingWriter int64

func (c *countingWriter) Write(p []byte) (int, error) {
	*c += countingWriter(len(p))
	return len(p), nil
}
