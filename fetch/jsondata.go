package fetch

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"unicode"
	"unicode/utf8"
)

// The report's data field of a large body is written from the body's spill
// file, never held in memory: a 100 MB body of NUL bytes became about 3 GB
// as an escaped Go string. The streamed field is byte for byte what setData
// would have made from the whole body (tests compare the two), so the
// output does not depend on the body's size.

// streamDataMin is the smallest body written from its reader instead of
// being read into memory and escaped there; from it on, the report costs
// buffers of fixed size whatever the body (even one BufferSink still
// holds in memory: escaping a 1 MB body in memory cost 40 MB). A variable
// so tests can stream small bodies.
var streamDataMin int64 = 64 << 10

// dataKind is how a body appears in the report, as setData decides it.
type dataKind int

const (
	dataJSON   dataKind = iota // "data": the body compacted (valid JSON and UTF-8)
	dataString                 // "data": the body as a JSON string (UTF-8)
	dataBase64                 // "data_base64": anything else
)

// streamedData is a body whose data field is written by streaming it.
type streamedData struct {
	src        io.ReadSeeker
	size       int64
	kind       dataKind
	start, end int64 // the body without leading and trailing white space (dataJSON)
	token      string
}

// newStreamedData classifies the body in src (size bytes) the way setData
// does, reading it once; nil with an error if it cannot be read.
func newStreamedData(src io.ReadSeeker, size int64) (*streamedData, error) {
	d := &streamedData{src: src, size: size, kind: dataBase64}
	start, err := trimStart(src, size)
	if err != nil {
		return nil, err
	}
	end, err := trimEnd(src, start, size)
	if err != nil {
		return nil, err
	}
	d.start, d.end = start, end
	validUTF8, validJSON, err := scanBody(src, start, end)
	if err != nil {
		return nil, err
	}
	switch {
	case validUTF8 && validJSON && end > start:
		d.kind = dataJSON
	case validUTF8:
		// The trimmed ends are white space runes, so the whole body is
		// UTF-8 when the rest is.
		d.kind = dataString
	}
	var tok [16]byte
	if _, err := rand.Read(tok[:]); err != nil {
		return nil, err
	}
	d.token = "refetch-data-" + hex.EncodeToString(tok[:])
	return d, nil
}

// trimStart is the offset of the first rune of src that is not white space
// (unicode.IsSpace, as bytes.TrimSpace decides), or size.
func trimStart(src io.ReadSeeker, size int64) (int64, error) {
	if _, err := src.Seek(0, io.SeekStart); err != nil {
		return 0, err
	}
	br := bufio.NewReaderSize(io.LimitReader(src, size), 32<<10)
	var off int64
	for off < size {
		r, n, err := br.ReadRune()
		if err != nil {
			return 0, err
		}
		if !unicode.IsSpace(r) || (r == utf8.RuneError && n == 1) {
			return off, nil
		}
		off += int64(n)
	}
	return off, nil
}

// trimEnd is the offset just past the last rune of src[start:size] that is
// not white space, reading backwards from the end.
func trimEnd(src io.ReadSeeker, start, size int64) (int64, error) {
	buf := make([]byte, 4096)
	end := size
	for end > start {
		lo := max(start, end-int64(len(buf)))
		b := buf[:end-lo]
		if _, err := src.Seek(lo, io.SeekStart); err != nil {
			return 0, err
		}
		if _, err := io.ReadFull(src, b); err != nil {
			return 0, err
		}
		j := len(b)
		for j > 0 {
			r, n := utf8.DecodeLastRune(b[:j])
			if r == utf8.RuneError && n == 1 && j < utf8.UTFMax && lo > start {
				break // the rune may begin before this window: read again
			}
			if !unicode.IsSpace(r) || (r == utf8.RuneError && n == 1) {
				return lo + int64(j), nil
			}
			j -= n
		}
		end = lo + int64(j)
	}
	return end, nil
}

// scanBody reads src[start:end] once and says whether it is UTF-8 and
// whether it is one JSON value (json.Valid).
func scanBody(src io.ReadSeeker, start, end int64) (validUTF8, validJSON bool, err error) {
	if _, err := src.Seek(start, io.SeekStart); err != nil {
		return false, false, err
	}
	var v jsonValidator
	validUTF8, validJSON = true, true
	buf := make([]byte, 64<<10)
	var carry int
	r := io.LimitReader(src, end-start)
	for {
		n, rerr := r.Read(buf[carry:])
		chunk := buf[:carry+n]
		if validJSON {
			for _, c := range chunk[carry:] {
				if !v.step(c) {
					validJSON = false
					break
				}
			}
		}
		if validUTF8 {
			keep := incompleteTail(chunk)
			if !utf8.Valid(chunk[:len(chunk)-keep]) {
				validUTF8 = false
			}
			carry = copy(buf, chunk[len(chunk)-keep:])
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return false, false, rerr
		}
		if !validUTF8 && !validJSON {
			break
		}
	}
	if carry > 0 {
		validUTF8 = false
	}
	return validUTF8, validJSON && v.end(), nil
}

// incompleteTail is how many bytes at the end of b begin a rune that
// continues past b (0 to 3).
func incompleteTail(b []byte) int {
	for k := 1; k < utf8.UTFMax && k <= len(b); k++ {
		c := b[len(b)-k]
		if utf8.RuneStart(c) {
			if c >= utf8.RuneSelf && !utf8.FullRune(b[len(b)-k:]) {
				return k
			}
			return 0
		}
	}
	return 0
}

// placeholder is the JSON text the report holds where the data goes.
func (d *streamedData) placeholder() string { return `"` + d.token + `"` }

// write writes the data field's value: the compacted JSON, the quoted
// string or the quoted base64 text.
func (d *streamedData) write(w io.Writer) error {
	switch d.kind {
	case dataJSON:
		return d.writeCompact(w)
	case dataString:
		return d.writeString(w)
	default:
		return d.writeBase64(w)
	}
}

func (d *streamedData) section(start, end int64) (io.Reader, error) {
	if _, err := d.src.Seek(start, io.SeekStart); err != nil {
		return nil, err
	}
	return io.LimitReader(d.src, end-start), nil
}

// writeCompact writes the body without the white space json.Compact
// removes: JSON white space outside strings.
func (d *streamedData) writeCompact(w io.Writer) error {
	r, err := d.section(d.start, d.end)
	if err != nil {
		return err
	}
	in := make([]byte, 64<<10)
	out := make([]byte, 0, 64<<10)
	inString, escaped := false, false
	for {
		n, rerr := r.Read(in)
		out = out[:0]
		for _, c := range in[:n] {
			switch {
			case inString:
				switch {
				case escaped:
					escaped = false
				case c == '\\':
					escaped = true
				case c == '"':
					inString = false
				}
			case c == '"':
				inString = true
			case c == ' ' || c == '\t' || c == '\n' || c == '\r':
				continue
			}
			out = append(out, c)
		}
		if _, err := w.Write(out); err != nil {
			return err
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}

// writeString writes the body as json.Marshal writes a string, a chunk of
// whole runes at a time: the escapes depend on each rune alone.
func (d *streamedData) writeString(w io.Writer) error {
	r, err := d.section(0, d.size)
	if err != nil {
		return err
	}
	buf := make([]byte, 64<<10)
	out := make([]byte, 0, 6*len(buf))
	if _, err := io.WriteString(w, `"`); err != nil {
		return err
	}
	var carry int
	for {
		n, rerr := r.Read(buf[carry:])
		chunk := buf[:carry+n]
		keep := incompleteTail(chunk)
		if rerr == io.EOF {
			keep = 0
		}
		if whole := chunk[:len(chunk)-keep]; len(whole) > 0 {
			out = appendEscaped(out[:0], whole)
			if _, err := w.Write(out); err != nil {
				return err
			}
		}
		carry = copy(buf, chunk[len(chunk)-keep:])
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return rerr
		}
	}
	_, err = io.WriteString(w, `"`)
	return err
}

// appendEscaped appends the inside of the JSON string json.Marshal makes
// of s (whole runes): the escapes of encoding/json with HTML escaping on,
// which setData's json.Marshal uses.
func appendEscaped(dst, s []byte) []byte {
	const hexDigits = "0123456789abcdef"
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default: // other controls, and <, > and &
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, n := utf8.DecodeRune(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			start = i + n
		case r == '\u2028' || r == '\u2029':
			// Escaped for JSONP, as encoding/json does.
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			start = i + n
		}
		i += n
	}
	return append(dst, s[start:]...)
}

func (d *streamedData) writeBase64(w io.Writer) error {
	r, err := d.section(0, d.size)
	if err != nil {
		return err
	}
	if _, err := io.WriteString(w, `"`); err != nil {
		return err
	}
	enc := base64.NewEncoder(base64.StdEncoding, w)
	if _, err := io.CopyBuffer(enc, r, make([]byte, 48<<10)); err != nil {
		return err
	}
	if err := enc.Close(); err != nil {
		return err
	}
	_, err = io.WriteString(w, `"`)
	return err
}

// WriteJSON writes the report as one line of JSON (HTML characters not
// escaped), streaming a large body's data from where it is kept.
func (r *Report) WriteJSON(w io.Writer) error {
	var head bytes.Buffer
	enc := json.NewEncoder(&head)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r); err != nil {
		return err
	}
	d := r.streamed
	if d == nil {
		_, err := w.Write(head.Bytes())
		return err
	}
	i := bytes.Index(head.Bytes(), []byte(d.placeholder()))
	if i < 0 {
		return errors.New("internal error: the report lost its data placeholder")
	}
	out := &writeErrs{w: w}
	bw := bufio.NewWriterSize(out, 64<<10)
	bw.Write(head.Bytes()[:i])
	if err := d.write(bw); err != nil {
		if out.err != nil {
			// Writing the report failed (a full disk), not reading the body.
			return out.err
		}
		return fmt.Errorf("reading the body for the report: %w", err)
	}
	bw.Write(head.Bytes()[i+len(d.placeholder()):])
	return bw.Flush()
}

// jsonValidator checks one JSON text a byte at a time, accepting what
// json.Valid accepts (including its nesting limit of 10000) without
// holding the text.
type jsonValidator struct {
	state  vstate
	stack  []byte // '{' or '[' per open container
	lit    string // the rest of a literal being read
	hex    int    // hex digits left in a \u escape
	done   bool   // a whole value was read
	failed bool
}

type vstate uint8

const (
	vValue      vstate = iota // expecting a value
	vAfterValue               // after a value: ',', a close, or the end
	vKey                      // expecting a key or '}' (just after '{')
	vKeyNext                  // expecting a key (after ',')
	vColon                    // expecting ':'
	vString                   // inside a string
	vEscape                   // after '\' in a string
	vHex                      // in the hex digits of \u
	vLiteral                  // inside true/false/null
	vNeg                      // after '-'
	vZero                     // after a leading 0
	vInt                      // in integer digits
	vDot                      // after '.'
	vFrac                     // in fraction digits
	vExp                      // after 'e'
	vExpSign                  // after 'e+' or 'e-'
	vExpDigits                // in exponent digits
	vValueFirst               // expecting a value or ']' (just after '[')
)

const maxJSONDepth = 10000

func isJSONSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// step takes the next byte; false once the text cannot be valid JSON.
func (v *jsonValidator) step(c byte) bool {
	if v.failed {
		return false
	}
	ok := v.step1(c)
	if !ok {
		v.failed = true
	}
	return ok
}

// endNumber ends a number at c, which is then read after the value.
func (v *jsonValidator) endNumber(c byte) bool {
	v.valueDone()
	return v.step1(c)
}

// valueDone marks the end of a value.
func (v *jsonValidator) valueDone() {
	v.state = vAfterValue
	if len(v.stack) == 0 {
		v.done = true
	}
}

func (v *jsonValidator) beginValue(c byte) bool {
	switch {
	case isJSONSpace(c):
		return true
	case c == '{' || c == '[':
		v.stack = append(v.stack, c)
		if len(v.stack) > maxJSONDepth {
			return false
		}
		if c == '{' {
			v.state = vKey
		} else {
			v.state = vValueFirst
		}
	case c == '"':
		v.state = vString
	case c == '-':
		v.state = vNeg
	case c == '0':
		v.state = vZero
	case c >= '1' && c <= '9':
		v.state = vInt
	case c == 't':
		v.state, v.lit = vLiteral, "rue"
	case c == 'f':
		v.state, v.lit = vLiteral, "alse"
	case c == 'n':
		v.state, v.lit = vLiteral, "ull"
	default:
		return false
	}
	return true
}

func (v *jsonValidator) step1(c byte) bool {
	switch v.state {
	case vValue:
		if v.done {
			return isJSONSpace(c)
		}
		return v.beginValue(c)
	case vValueFirst:
		if c == ']' {
			v.stack = v.stack[:len(v.stack)-1]
			v.valueDone()
			return true
		}
		if isJSONSpace(c) {
			return true
		}
		v.state = vValue
		return v.beginValue(c)
	case vKey, vKeyNext:
		switch {
		case isJSONSpace(c):
			return true
		case c == '"':
			v.state = vString
			v.stack = append(v.stack, ':') // the string read is a key
			return true
		case c == '}' && v.state == vKey:
			v.stack = v.stack[:len(v.stack)-1]
			v.valueDone()
			return true
		}
		return false
	case vColon:
		if isJSONSpace(c) {
			return true
		}
		if c != ':' {
			return false
		}
		v.state = vValue
		return true
	case vAfterValue:
		if isJSONSpace(c) {
			return true
		}
		if len(v.stack) == 0 {
			return false // text after the value
		}
		top := v.stack[len(v.stack)-1]
		switch {
		case c == ',' && top == '{':
			v.state = vKeyNext
		case c == ',' && top == '[':
			v.state = vValue
		case c == '}' && top == '{', c == ']' && top == '[':
			v.stack = v.stack[:len(v.stack)-1]
			v.valueDone()
		default:
			return false
		}
		return true
	case vString:
		switch {
		case c == '"':
			if n := len(v.stack); n > 0 && v.stack[n-1] == ':' {
				v.stack = v.stack[:n-1]
				v.state = vColon
				return true
			}
			v.valueDone()
		case c == '\\':
			v.state = vEscape
		case c < 0x20:
			return false
		}
		return true
	case vEscape:
		switch c {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			v.state = vString
		case 'u':
			v.state, v.hex = vHex, 4
		default:
			return false
		}
		return true
	case vHex:
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
		if v.hex--; v.hex == 0 {
			v.state = vString
		}
		return true
	case vLiteral:
		if c != v.lit[0] {
			return false
		}
		if v.lit = v.lit[1:]; v.lit == "" {
			v.valueDone()
		}
		return true
	case vNeg:
		switch {
		case c == '0':
			v.state = vZero
		case c >= '1' && c <= '9':
			v.state = vInt
		default:
			return false
		}
		return true
	case vZero, vInt:
		switch {
		case c >= '0' && c <= '9' && v.state == vInt:
		case c == '.':
			v.state = vDot
		case c == 'e' || c == 'E':
			v.state = vExp
		default:
			return v.endNumber(c)
		}
		return true
	case vDot:
		if c < '0' || c > '9' {
			return false
		}
		v.state = vFrac
		return true
	case vFrac:
		switch {
		case c >= '0' && c <= '9':
		case c == 'e' || c == 'E':
			v.state = vExp
		default:
			return v.endNumber(c)
		}
		return true
	case vExp:
		switch {
		case c == '+' || c == '-':
			v.state = vExpSign
		case c >= '0' && c <= '9':
			v.state = vExpDigits
		default:
			return false
		}
		return true
	case vExpSign:
		if c < '0' || c > '9' {
			return false
		}
		v.state = vExpDigits
		return true
	case vExpDigits:
		if c >= '0' && c <= '9' {
			return true
		}
		return v.endNumber(c)
	}
	return false
}

// end says whether the bytes so far were exactly one JSON value.
func (v *jsonValidator) end() bool {
	if v.failed {
		return false
	}
	switch v.state {
	case vZero, vInt, vFrac, vExpDigits:
		if len(v.stack) == 0 {
			return true // a number at the top level ends with the text
		}
	}
	return v.done && v.state == vAfterValue
}

// writeErrs remembers the first error its writer returned.
type writeErrs struct {
	w   io.Writer
	err error
}

func (e *writeErrs) Write(p []byte) (int, error) {
	n, err := e.w.Write(p)
	if err != nil && e.err == nil {
		e.err = err
	}
	return n, err
}
