package fetch

import (
	"fmt"
)

// This file holds the errors about one input of the fetch layer: a field
// of a request, the output path, a check's JSON expectation. Each says
// what failed in this layer's own words, or, once its Flag is set, with
// the input called by that name (Text): the command layer sets Flag to
// the flag, or the variable, that set the input, where the error comes
// back to it. No message here names a flag, and the wrappers of these
// errors compose their messages when asked (see markAs), so a Flag set
// later still shows.

// Field is the input an InvalidError is about.
type Field int

// The fields of a request that InvalidError reports.
const (
	// FieldURL is the URL; its messages stand on their own (Text ignores
	// the name).
	FieldURL Field = iota
	// FieldMethod is Request.Method.
	FieldMethod
	// FieldHeader is a header: of Request.Header, or one ParseHeader
	// parses.
	FieldHeader
	// FieldUserAgent is Request.UserAgent.
	FieldUserAgent
	// FieldUser is Request.User, "user:password": its value is never
	// shown.
	FieldUser
	// FieldCACert is the CA file: Request.CACert, or LoadCACert's path.
	FieldCACert
)

// Fields returns every Field, for callers that name each one.
func Fields() []Field {
	return []Field{FieldURL, FieldMethod, FieldHeader, FieldUserAgent, FieldUser, FieldCACert}
}

// String is the field in words: "URL", "method", "header", "user agent",
// "credentials", "CA file".
func (f Field) String() string {
	switch f {
	case FieldURL:
		return "URL"
	case FieldMethod:
		return "method"
	case FieldHeader:
		return "header"
	case FieldUserAgent:
		return "user agent"
	case FieldUser:
		return "credentials"
	case FieldCACert:
		return "CA file"
	}
	return fmt.Sprintf("field(%d)", int(f))
}

// InvalidError is input refetch will not send: errors.Is(err, ErrInvalid)
// holds for it, and nothing was sent.
type InvalidError struct {
	Field Field
	// Value is the input as the message shows it: the method, the user
	// agent, the CA file's path. It is empty for credentials, which are
	// never shown, and for headers and URLs, which Problem shows (with
	// any secret hidden).
	Value string
	// Problem says what is wrong, and what to do.
	Problem string
	// Flag, when set, is what the message calls the input: the flag or
	// the variable that set it (the command layer's words).
	Flag string
}

// Error says what is wrong, calling the input by Field's words:
// `invalid method "GET X": …`, `CA file "ca.pem": cannot read: …`.
// Messages about headers and URLs are Problem alone: it names them.
func (e *InvalidError) Error() string {
	switch {
	case e.Flag != "":
		return e.Text(e.Flag)
	case e.Field == FieldHeader || e.Field == FieldURL:
		return e.Problem
	}
	return e.Text(e.Field.String())
}

// Text is Error with the input called name (such as the flag that set
// it): `invalid name "GET X": …`, `invalid name (value not shown): …`,
// `name "ca.pem": …`, `invalid name: header …`. For a URL it is Error.
func (e *InvalidError) Text(name string) string {
	switch e.Field {
	case FieldMethod, FieldUserAgent:
		return fmt.Sprintf("invalid %s %q: %s", name, e.Value, e.Problem)
	case FieldUser:
		return fmt.Sprintf("invalid %s (value not shown): %s", name, e.Problem)
	case FieldCACert:
		return fmt.Sprintf("%s %q: %s", name, e.Value, e.Problem)
	case FieldHeader:
		return "invalid " + name + ": " + e.Problem
	}
	return e.Problem
}

// Is makes every InvalidError an ErrInvalid.
func (e *InvalidError) Is(target error) bool { return target == ErrInvalid }

// invalid returns the InvalidError of field, with value shown as is.
func invalid(field Field, value, format string, args ...any) error {
	return &InvalidError{Field: field, Value: value, Problem: fmt.Sprintf(format, args...)}
}

// invalidf is an InvalidError about the URL.
func invalidf(format string, args ...any) error { return invalid(FieldURL, "", format, args...) }

// headerInvalidf is an InvalidError about a header; the message shows it.
func headerInvalidf(format string, args ...any) error {
	return invalid(FieldHeader, "", format, args...)
}

// OutputError is a failure about the output path Path: refused before the
// run (NewFileSink, OutputTarget's callers: a directory, a socket, a
// directory that cannot be written), or a write to it that failed, which
// is wrapped in ErrOutput as well. Err says what went wrong, and is
// unwrapped.
type OutputError struct {
	Path string
	Err  error
	// Flag, when set, is what the message calls the output (-o).
	Flag string
}

// Error is `output file PATH: what went wrong`.
func (e *OutputError) Error() string { return e.Text(or(e.Flag, "output file")) }

// Text is Error with the output called name (such as the flag that set
// it): `name PATH: what went wrong`.
func (e *OutputError) Text(name string) string { return name + " " + e.Path + ": " + e.Err.Error() }

func (e *OutputError) Unwrap() error { return e.Err }

// outputError is the OutputError of path, err in words.
func outputError(path, format string, args ...any) error {
	return &OutputError{Path: path, Err: fmt.Errorf(format, args...)}
}

// JSONExpectationError is a failed JSON expectation (Expectations.JSON):
// the jq expression Expr, as given, and what it made of the body. It
// carries no error of jq's to unwrap: a check retries every failed
// expectation, whatever jq said.
type JSONExpectationError struct {
	Expr string
	// Yielded is the first value the expression yielded that was not
	// true, as JSON, shortened; "" when it yielded none.
	Yielded string
	// Problem is why the expression could not be judged: the body is not
	// JSON, or jq failed on it; "" when it ran.
	Problem string
	// Flag, when set, is what the message calls the expectation
	// (--expect-json).
	Flag string
}

// Error calls the expression a JSON expectation:
// `JSON expectation .ok yielded false, not true`.
func (e *JSONExpectationError) Error() string { return e.Text(or(e.Flag, "JSON expectation")) }

// or is a, or b when a is empty.
func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// kindError is err marked as kind (errors.Is holds for both), said as
// "kind: err" when its message is asked for, not when it is made: the
// command layer may still name err's input (OutputError.Flag) after.
type kindError struct{ kind, err error }

func (e *kindError) Error() string {
	msg := e.kind.Error() + ": " + e.err.Error()
	if e.kind == errOutput {
		// Every local write that ran out of room (-o, stdout, the body's
		// copy in $TMPDIR) says what that means, here and only here.
		msg += spaceHint(e.err)
	}
	return msg
}
func (e *kindError) Unwrap() []error { return []error{e.kind, e.err} }

// markAs is err marked as kind (fmt.Errorf("%w: %w", kind, err), but
// said when asked).
func markAs(kind, err error) error { return &kindError{kind: kind, err: err} }

// Text is Error with the expression called name (such as the flag that
// set it): `name EXPR: problem`, `name EXPR yielded V, not true`,
// `name EXPR yielded nothing`.
func (e *JSONExpectationError) Text(name string) string {
	switch {
	case e.Problem != "":
		return name + " " + e.Expr + ": " + e.Problem
	case e.Yielded != "":
		return name + " " + e.Expr + " yielded " + e.Yielded + ", not true"
	}
	return name + " " + e.Expr + " yielded nothing"
}
