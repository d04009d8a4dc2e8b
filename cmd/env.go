package cmd

import (
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// EnvName is the environment variable of a flag: REFETCH_ and the flag's
// name in upper case with dashes as underscores (--max-time: REFETCH_MAX_TIME).
func EnvName(flag string) string {
	return "REFETCH_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// applyEnv sets every flag of c that was not given on the command line
// from its REFETCH_* variable, so the command line wins. A bad value is a
// usage error naming the variable.
func applyEnv(c *cobra.Command, getenv func(string) string) error {
	var err error
	set := func(f *pflag.Flag) {
		if err != nil || f.Changed || f.Name == "help" || f.Name == "version" {
			return
		}
		v := getenv(EnvName(f.Name))
		if v == "" {
			return
		}
		if f.Value.Type() == "stringArray" || f.Value.Type() == "stringSlice" {
			// One value per line, so several headers fit in one variable.
			for _, item := range strings.Split(v, "\n") {
				if item = strings.TrimSpace(item); item != "" {
					if serr := c.Flags().Set(f.Name, item); serr != nil {
						err = usageErrorf("invalid %s=%q: %s", EnvName(f.Name), v, envValueError(f, serr))
						return
					}
				}
			}
			return
		}
		if serr := c.Flags().Set(f.Name, v); serr != nil {
			err = usageErrorf("invalid %s=%q: %s", EnvName(f.Name), v, envValueError(f, serr))
		}
	}
	c.Flags().VisitAll(set)
	return err
}

// envValueError says what a flag's variable takes, in place of the
// parser's own words; errors of refetch's own flag types pass through.
func envValueError(f *pflag.Flag, err error) string {
	switch f.Value.Type() {
	case "duration", "int", "float64", "bool":
		return valueHint(f.Value.Type())
	}
	return err.Error()
}
