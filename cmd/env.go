package cmd

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/refetch/refetch/internal/redact"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// EnvName is the environment variable of a flag: REFETCH_ and the flag's
// name in upper case with dashes as underscores (--max-time: REFETCH_MAX_TIME).
func EnvName(flag string) string {
	return "REFETCH_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// envAnnotation marks a flag that applyEnv set from its variable (see
// flagNames).
const envAnnotation = "refetch_from_env"

// applyEnv sets every flag of c that was not given on the command line
// from its REFETCH_* variable, so the command line wins, and marks it as
// set from there (envAnnotation). A bad value is a usage error naming the
// variable.
func applyEnv(c *cobra.Command, getenv func(string) string) error {
	var err error
	given := map[string]bool{}
	c.Flags().Visit(func(f *pflag.Flag) { given[f.Name] = true })
	set := func(f *pflag.Flag) {
		if err != nil || f.Changed || noEnv[f.Name] {
			return
		}
		for _, r := range rivals[f.Name] {
			if given[r] && !(r == "output" && c.Flags().Lookup(r).Value.String() == "-") {
				// The command line wins: its -v over REFETCH_QUIET. (-o -
				// is stdout, which -N streams to: no rival.)
				return
			}
		}
		v := getenv(EnvName(f.Name))
		if v == "" {
			return
		}
		if f.Value.Type() == "stringArray" || f.Value.Type() == "stringSlice" {
			// One value per line, so several headers fit in one variable.
			for i, item := range strings.Split(v, "\n") {
				// Blanks go; a CR is refused, as on the command line
				// (promises.md: refused, not stripped), for every list:
				// a report path or a --resolve entry would keep it too.
				item = strings.Trim(item, " \t")
				if strings.ContainsRune(item, '\r') {
					// The value is not shown: a header's may be a secret.
					err = usageErrorf("invalid %s: line %d ends in a CR (Windows line endings): strip it", EnvName(f.Name), i+1)
					return
				}
				if item != "" {
					if serr := c.Flags().Set(f.Name, item); serr != nil {
						err = usageErrorf("invalid %s=%q: %s", EnvName(f.Name), v, envValueError(f, serr))
						return
					}
				}
			}
		} else if serr := c.Flags().Set(f.Name, v); serr != nil {
			err = usageErrorf("invalid %s=%q: %s", EnvName(f.Name), v, envValueError(f, serr))
			return
		}
		if f.Changed {
			_ = c.Flags().SetAnnotation(f.Name, envAnnotation, []string{EnvName(f.Name)})
		}
	}
	c.Flags().VisitAll(set)
	return err
}

// noEnv are the flags no variable sets: help and version, and
// `breaker reset --all`, which a REFETCH_ALL meant for anything else in a
// job's environment would turn from one key's reset into every key's.
var noEnv = map[string]bool{"help": true, "version": true, "all": true}

// namingFlags are the flags whose values name a file, a directory, a
// store or a key: a CR in one is a script's Windows line ending, not
// part of the name ("out.txt\r", a state dir "st\r" beside "st").
var namingFlags = []string{"output", "input", "report", "metrics", "state-dir", "store", "breaker-key",
	"fallback-file", "cacert"}

// checkNames refuses a naming flag whose value holds a CR or a line feed,
// whether given on the command line or by its variable, before anything
// is done.
func checkNames(fs *pflag.FlagSet) error {
	n := namesOf(fs)
	for _, name := range namingFlags {
		f := fs.Lookup(name)
		if f == nil || !f.Changed {
			continue
		}
		values := []string{f.Value.String()}
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			values = sv.GetSlice()
		}
		for _, v := range values {
			if strings.ContainsAny(v, "\r\n") {
				// A store URL or a key may hold a password.
				return n.invalid(name, strconv.Quote(redact.RawURL(v)), "a name with a line break (Windows line endings in a script?): strip it")
			}
		}
	}
	return nil
}

// FromEnv reports whether flag name can come from its REFETCH_ variable
// (every flag but those of noEnv), for the manual.
func FromEnv(name string) bool { return !noEnv[name] }

// rivals are the flags that cannot be used together, each with the flags
// it excludes: a variable is not applied when a rival is on the command
// line, so the command line wins (REFETCH_QUIET=1 refetch fetch -v URL is
// verbose). Two rivals both from variables, or both on the command line,
// are a usage error naming them as they were given.
var rivals = map[string][]string{
	"quiet": {"verbose"}, "verbose": {"quiet"},
	"no-buffer": {"output", "json"}, "output": {"no-buffer"}, "json": {"no-buffer"},
	"fallback": {"fallback-file"}, "fallback-file": {"fallback"},
}

// flagNames says how messages call each flag: by the flag as written on a
// command line, or by its REFETCH_* variable when the value came from
// there (the flag was not given). The zero value calls every flag by the
// flag.
type flagNames struct{ fromEnv map[string]bool }

// namesOf reads from fs which flags applyEnv set from their variables.
func namesOf(fs *pflag.FlagSet) flagNames {
	var n flagNames
	fs.VisitAll(func(f *pflag.Flag) {
		if _, ok := f.Annotations[envAnnotation]; ok {
			if n.fromEnv == nil {
				n.fromEnv = map[string]bool{}
			}
			n.fromEnv[f.Name] = true
		}
	})
	return n
}

// of is how a message calls the flag name, shown as it is written on a
// command line ("-X", "--max-time"): shown, or its variable.
func (n flagNames) of(name, shown string) string {
	if n.fromEnv[name] {
		return EnvName(name)
	}
	return shown
}

// flag is of for a flag shown as --name.
func (n flagNames) flag(name string) string { return n.of(name, "--"+name) }

// set is how a message shows the flag name set to v: "--name v", or
// "REFETCH_NAME=v" when the value came from the variable.
func (n flagNames) set(name, shown string, v any) string {
	if n.fromEnv[name] {
		return fmt.Sprintf("%s=%v", EnvName(name), v)
	}
	return fmt.Sprintf("%s %v", shown, v)
}

// invalid is the usage error about flag name (shown as --name) set to v:
// "invalid --name v: why", or "invalid REFETCH_NAME=v: why".
func (n flagNames) invalid(name string, v any, why string, args ...any) error {
	return usageErrorf("invalid %s: %s", n.set(name, "--"+name, v), fmt.Sprintf(why, args...))
}

// envValueError says what a flag's variable takes, in place of the
// parser's own words; errors of refetch's own flag types pass through.
func envValueError(f *pflag.Flag, err error) string {
	var bound *boundError
	if errors.As(err, &bound) {
		return bound.Error()
	}
	switch f.Value.Type() {
	case "duration", "int", "float64", "bool":
		return valueHint(f.Value.Type())
	}
	return err.Error()
}
