// Package cmd holds refetch's Cobra commands. Each command has an Options
// struct beside its NewCmdX constructor; flags and REFETCH_* environment
// variables become options, options become a run, and the run's error
// becomes an exit code in exactly one place (ExitCode). Standard streams
// come through IOStreams, so tests pass buffers. Only main exits.
package cmd
