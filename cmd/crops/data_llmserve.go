package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// Placeholder until its issue lands.
func newDataLLMServeCmd() *cobra.Command {
	return &cobra.Command{Use: "llm-serve", Hidden: true, RunE: func(*cobra.Command, []string) error { return errors.New("llm-serve: not implemented yet") }}
}
