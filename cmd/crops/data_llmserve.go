package main

import (
	"fmt"
	"log/slog"
	"net"
	"os"

	"github.com/cropsdev/crops/core/llmserve"
	"github.com/cropsdev/crops/core/logging"
	"github.com/spf13/cobra"
)

// newDataLLMServeCmd is `crops data llm-serve`: an OpenAI-compatible
// chat-completions server answering from a simulated world's oracle, so the
// llm source runs offline through its real client.
func newDataLLMServeCmd() *cobra.Command {
	var (
		world      string
		addr       string
		errorRate  float64
		seed       uint64
		exSense    float64
		judgeNoise float64
	)
	cmd := &cobra.Command{
		Use:   "llm-serve",
		Short: "Serve the OpenAI chat-completions protocol from a simulated world's knowledge oracle",
		Long: `llm-serve answers POST /v1/chat/completions (and /chat/completions) from the world's
oracle.parquet: it reads the quoted query out of the prompt that the llm source builds
and returns the requested number of records for it, with the oracle's deliberate
errors at the oracle's rate (or at --error-rate). Unknown queries get an empty list.
Like a model prompted with one example, it follows the prompt's exemplar: each right
record is redrawn from the exemplar's sense with probability --exemplar-sense-prob
(0 ignores the exemplar; see docs/llm-source.md).
Point the llm source's base_url at http://ADDR/v1. Ctrl-C stops it gracefully.`,
		Example: `  crops data llm-serve --world results/demo/world --addr 127.0.0.1:8089`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if world == "" {
				return fmt.Errorf("--world is required: a simulated world directory holding oracle.parquet")
			}
			rate := -1.0 // the oracle's own rate
			if cmd.Flags().Changed("error-rate") {
				if errorRate < 0 || errorRate > 1 {
					return fmt.Errorf("--error-rate %g: expected a value in [0, 1]", errorRate)
				}
				rate = errorRate
			}
			log := logging.New(os.Stderr, slog.LevelInfo)
			o, err := llmserve.Load(cmd.Context(), world)
			if err != nil {
				return err
			}
			if exSense < 0 || exSense > 1 {
				return fmt.Errorf("--exemplar-sense-prob %g: expected a value in [0, 1] (0 ignores the exemplar)", exSense)
			}
			srv, err := llmserve.New(o, llmserve.Options{ErrorRate: rate, Seed: seed, ExemplarSenseProb: exSense, JudgeNoise: judgeNoise, Logger: log})
			if err != nil {
				return err
			}
			err = llmserve.ListenAndServe(cmd.Context(), addr, srv, func(a net.Addr) {
				log.Info("llm-serve: listening", "base_url", "http://"+a.String()+"/v1", "world", world,
					"queries", o.Queries(), "records", o.Rows(), "error_rate", rateText(rate), "exemplar_sense_prob", exSense)
			})
			if err == nil {
				log.Info("llm-serve: stopped")
			}
			return err
		},
	}
	cmd.Flags().StringVar(&world, "world", "", "simulated world directory (with oracle.parquet)")
	cmd.Flags().StringVar(&addr, "addr", "127.0.0.1:8089", "listen address (host:port; port 0 picks a free one)")
	cmd.Flags().Float64Var(&errorRate, "error-rate", 0, "resample answers so each record is wrong with this probability (default: the oracle's own rate)")
	cmd.Flags().Uint64Var(&seed, "seed", 0, "mixed with each request's seed to choose the records")
	cmd.Flags().Float64Var(&exSense, "exemplar-sense-prob", llmserve.DefaultExemplarSenseProb, "probability that a right record is redrawn from the sense of the prompt's exemplar (one-shot conditioning; 0 ignores the exemplar)")
	cmd.Flags().Float64Var(&judgeNoise, "judge-noise", llmserve.DefaultJudgeNoise, "llm-judge prompts: chance the served grade is one off the world's qrels grade")
	return cmd
}

func rateText(r float64) string {
	if r < 0 {
		return "oracle"
	}
	return fmt.Sprint(r)
}
