package cmd

import "github.com/spf13/cobra"

// NewCmdDemo returns `refetch demo`.
func NewCmdDemo(f *Factory) *cobra.Command {
	return &cobra.Command{Use: "demo", Hidden: true}
}
