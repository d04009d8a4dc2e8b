package cmd

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

// completionShells are the shells `refetch completion` writes scripts for,
// in the order usage errors name them.
var completionShells = []string{"bash", "zsh", "fish", "powershell"}

// NewCmdCompletion returns `refetch completion SHELL`. It replaces Cobra's
// default completion command, which answers an unknown shell
// (`completion tcsh`) with its help text and exit 0; a script must see a
// usage error (exit 2) instead. Being named "completion", it keeps Cobra
// from adding its default.
func NewCmdCompletion(f *Factory) *cobra.Command {
	var noDesc bool
	c := &cobra.Command{
		Use:   "completion " + strings.Join(completionShells, "|"),
		Short: "Generate the autocompletion script for the specified shell",
		Long: `Generate the autocompletion script for refetch for the specified shell
(bash, zsh, fish or powershell) on stdout. Packages install them already; by hand:

  bash:  refetch completion bash > /etc/bash_completion.d/refetch
         (or ~/.local/share/bash-completion/completions/refetch)
  zsh:   refetch completion zsh > "${fpath[1]}/_refetch"
  fish:  refetch completion fish > ~/.config/fish/completions/refetch.fish
  powershell:  refetch completion powershell | Out-String | Invoke-Expression`,
		ValidArgs:             completionShells,
		DisableFlagsInUseLine: true,
		Args: func(c *cobra.Command, args []string) error {
			want := "want " + strings.Join(completionShells[:len(completionShells)-1], ", ") +
				" or " + completionShells[len(completionShells)-1]
			switch {
			case len(args) == 0:
				return &UsageError{Err: fmt.Errorf("missing shell: %s", want), Cmd: c.CommandPath()}
			case len(args) > 1:
				return &UsageError{Err: fmt.Errorf("too many arguments: %q (one shell expected)", args[1:]), Cmd: c.CommandPath()}
			}
			for _, s := range completionShells {
				if args[0] == s {
					return nil
				}
			}
			return &UsageError{Err: fmt.Errorf("unsupported shell %q: %s", args[0], want), Cmd: c.CommandPath()}
		},
		RunE: func(c *cobra.Command, args []string) error {
			root, out := c.Root(), f.IO.Out
			switch args[0] {
			case "bash":
				return root.GenBashCompletionV2(out, !noDesc)
			case "zsh":
				if noDesc {
					return root.GenZshCompletionNoDesc(out)
				}
				return root.GenZshCompletion(out)
			case "fish":
				return root.GenFishCompletion(out, !noDesc)
			default: // powershell, the last one Args admits
				if noDesc {
					return root.GenPowerShellCompletion(out)
				}
				return root.GenPowerShellCompletionWithDesc(out)
			}
		},
	}
	c.Flags().BoolVar(&noDesc, "no-descriptions", false, "leave command and flag descriptions out of the completions")
	return c
}

// flagValues are the values shell completion offers for flags whose
// values are words, not files (a tour's bash offered file names for
// --color). A value ending in "=" or "/" is a start: no space follows.
var flagValues = map[string][]string{
	"color":  {"auto", "always", "never"},
	"report": {"junit=", "tap=", "tap13="},
	"hedge":  {"auto", "100ms", "0"},
	"rate":   {"auto", "1/s", "10/s", "1/m", "1/h"},
}

// completeFlagValues registers flagValues on c and its subcommands.
func completeFlagValues(c *cobra.Command) {
	for name, values := range flagValues {
		if c.Flags().Lookup(name) == nil && c.PersistentFlags().Lookup(name) == nil {
			continue
		}
		if _, ok := c.GetFlagCompletionFunc(name); ok {
			continue
		}
		vals := values
		c.RegisterFlagCompletionFunc(name, func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
			d := cobra.ShellCompDirectiveNoFileComp
			for _, v := range vals {
				if strings.HasSuffix(v, "=") {
					d |= cobra.ShellCompDirectiveNoSpace
				}
			}
			return vals, d
		})
	}
	for _, sub := range c.Commands() {
		completeFlagValues(sub)
	}
}
