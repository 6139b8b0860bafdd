package twotower

import (
	"context"
	"fmt"
	"iter"
	"math"
	"path/filepath"
	"sync"
	"time"

	"github.com/cropsdev/crops/sdk"
	mlctx "github.com/gomlx/gomlx/pkg/ml/context"
)

// resumeState returns the state of the latest checkpoint in dir (or the
// zero state when there is none), loaded into gctx; a checkpoint of another
// configuration is refused.
func resumeState(dir, key string, gctx *mlctx.Context, progress func(sdk.Progress)) (stateMeta, error) {
	meta := stateMeta{Format: 1, ConfigKey: key}
	ckpt, err := latestCheckpoint(dir)
	if err != nil || ckpt == "" {
		return meta, err
	}
	h, _, err := readStateHeader(ckpt)
	if err != nil {
		return meta, err
	}
	if h.Meta.ConfigKey != key {
		return meta, fmt.Errorf("ModelDir %s holds checkpoint %s of another configuration (%s; this run: %s); use a fresh ModelDir or delete the checkpoints",
			dir, filepath.Base(ckpt), h.Meta.ConfigKey, key)
	}
	if meta, err = loadState(ckpt, gctx); err != nil {
		return meta, fmt.Errorf("resume: %w", err)
	}
	progress(sdk.Progress{Epoch: meta.Epoch, Step: meta.Step, Message: "resumed from " + filepath.Base(ckpt)})
	return meta, nil
}

// trainLoop runs the epochs of one Train call: a step per batch (forward,
// loss plugin, backward and optimizer), progress every progress_every steps
// and checkpoints at the ends of epochs.
type trainLoop struct {
	ctx      context.Context
	req      sdk.TrainRequest
	p        Params
	t        *trainer
	sess     *session
	gctx     *mlctx.Context
	key      string
	progress func(sdk.Progress)
	total    int64 // steps to run in all (epochs or max_steps)
	step     int64 // steps done, resumed ones included
	meta     stateMeta

	winLoss               float64
	winSteps, winExamples int
	winStart              time.Time

	// grad is the gradient buffer a loss with ComputeInto (sdk.GradIntoLoss)
	// writes into, reused from step to step: no B*N allocation per step
	// (1 MB at 256 x 1024), whether the loss runs in this process or, by
	// the SDK's client, in a plugin process.
	grad []float32
}

// run trains from epoch meta.Epoch until the last epoch or total steps.
func (l *trainLoop) run() error {
	l.step = l.meta.Step
	l.winStart = time.Now()
	var prep func(*batch)
	if l.sess.net != nil {
		// The last scores may be in a segment the loss lent, unmapped
		// when the loss's client closes after Train.
		defer func() { l.sess.net.s = nil }()
		prep = l.sess.net.prepare
		l.t.yield = l.sess.net.help
		defer func() { l.t.yield = nil }()
	}
	for e := l.meta.Epoch; e < l.p.Epochs; e++ {
		for _, bt := range prefetch(l.t.epochSeq(e), prep, l.t.recycle) {
			if l.step >= l.total {
				return nil
			}
			if err := l.runStep(e, &bt); err != nil {
				return err
			}
		}
		if err := l.endEpoch(e); err != nil {
			return err
		}
	}
	return nil
}

// prefetch yields seq's batches, building each next one (and running prep
// on it, when not nil) in another goroutine while the caller trains on the
// current one: on two cores, building a batch (~0.9 ms on the medium world,
// a fifth of a one-core step) leaves the step's critical path. The batches
// and their order are seq's whatever the timing; stopping early stops the
// builder after the batch it is on. release, when not nil, gets each batch
// back once the caller's loop body has returned (trainer.recycle).
func prefetch(seq iter.Seq2[int, batch], prep, release func(*batch)) iter.Seq2[int, batch] {
	return func(yield func(int, batch) bool) {
		type item struct {
			k  int
			bt batch
		}
		ch := make(chan item) // unbuffered: one batch ahead
		done := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			defer close(ch)
			for k, bt := range seq {
				if prep != nil {
					prep(&bt)
				}
				select {
				case ch <- item{k, bt}:
				case <-done:
					return
				}
			}
		})
		defer wg.Wait()
		defer close(done)
		for it := range ch {
			more := yield(it.k, it.bt)
			if release != nil {
				release(&it.bt)
			}
			if !more {
				return
			}
		}
	}
}

// runStep trains on one batch of epoch e (0-based).
func (l *trainLoop) runStep(e int, bt *batch) error {
	if err := l.ctx.Err(); err != nil {
		return fmt.Errorf("two-tower train: interrupted at epoch %d step %d (resume continues from the last epoch checkpoint): %w", e+1, l.step, err)
	}
	// A loss plugin's client lends its shared-memory segment: the scores
	// are computed into it and the gradient checked in it, instead of a
	// B*N copy each way per step.
	var lentS, lentG []float32
	if lender, ok := l.req.Loss.(sdk.LendingLoss); ok {
		lentS, lentG = lender.LendBuffers(bt.B, bt.N)
	}
	S, err := l.sess.scoresInto(bt, lentS)
	if err != nil {
		return fmt.Errorf("two-tower train: epoch %d step %d: forward: %w", e+1, l.step+1, err)
	}
	in := sdk.LossInput{B: bt.B, N: bt.N, Scores: S, Tiers: bt.tiers, Valid: bt.valid, Tiers8: bt.tiers8, Params: l.req.LossParams}
	out, err := l.computeLoss(in, lentG)
	if err != nil {
		return fmt.Errorf("two-tower train: epoch %d step %d: loss plugin: %w", e+1, l.step+1, err)
	}
	if len(out.Grad) != bt.B*bt.N {
		return fmt.Errorf("two-tower train: loss plugin returned a gradient of length %d, expected B*N = %d*%d", len(out.Grad), bt.B, bt.N)
	}
	if math.IsNaN(out.Loss) || math.IsInf(out.Loss, 0) {
		return fmt.Errorf("two-tower train: epoch %d step %d: loss is %v; lower learning_rate or raise min_tau", e+1, l.step+1, out.Loss)
	}
	if err := l.sess.step(bt, out.Grad); err != nil {
		return fmt.Errorf("two-tower train: epoch %d step %d: backward: %w", e+1, l.step+1, err)
	}
	l.step++
	l.winLoss += out.Loss
	l.winSteps++
	l.winExamples += bt.examples
	if l.step%int64(l.p.ProgressEvery) == 0 {
		el := time.Since(l.winStart).Seconds()
		l.progress(sdk.Progress{Epoch: e + 1, Step: l.step, TotalSteps: l.total, Loss: l.winLoss / float64(l.winSteps),
			ExamplesPerSec: float64(l.winExamples) / el})
		l.winLoss, l.winSteps, l.winExamples, l.winStart = 0, 0, 0, time.Now()
	}
	return nil
}

// endEpoch records epoch e (0-based) as done and writes its checkpoint when
// checkpoint_every asks (every N epochs and after the last; 0 = never).
func (l *trainLoop) endEpoch(e int) error {
	tau, err := l.sess.tau()
	if err != nil {
		return fmt.Errorf("two-tower train: %w", err)
	}
	l.meta = stateMeta{Format: 1, ConfigKey: l.key, Epoch: e + 1, Step: l.step, Tau: tau}
	ce := l.p.CheckpointEvery
	if ce == 0 || ((e+1)%ce != 0 && e+1 != l.p.Epochs) {
		l.progress(sdk.Progress{Epoch: e + 1, Step: l.step, TotalSteps: l.total, Message: fmt.Sprintf("epoch %d done, tau=%.4f", e+1, tau)})
		return nil
	}
	if err := saveState(checkpointPath(l.req.ModelDir, e+1), l.gctx, l.meta, false); err != nil {
		return fmt.Errorf("two-tower train: checkpoint: %w", err)
	}
	if err := pruneCheckpoints(l.req.ModelDir, l.p.KeepCheckpoints); err != nil {
		return fmt.Errorf("two-tower train: %w", err)
	}
	l.progress(sdk.Progress{Epoch: e + 1, Step: l.step, TotalSteps: l.total, Message: fmt.Sprintf("epoch %d done, checkpoint saved, tau=%.4f", e+1, tau)})
	return nil
}

// computeLoss calls the loss on the step's scores, its gradient into the
// reused l.grad when the loss can write into a buffer (sdk.GradIntoLoss:
// the built-in losses in this process, and the SDK's client of a loss
// plugin, which checks the gradient in the shared-memory segment and
// copies it here), or into lent (B*N entries: the segment's own gradient
// area, where the client checks it in place).
func (l *trainLoop) computeLoss(in sdk.LossInput, lent []float32) (out sdk.LossOutput, err error) {
	if gl, ok := l.req.Loss.(sdk.GradIntoLoss); ok {
		if len(lent) == in.B*in.N {
			out.Grad = lent
		} else {
			l.grad = grow(l.grad, in.B*in.N)
			out.Grad = l.grad
		}
		out.Loss, err = gl.ComputeInto(l.ctx, in, out.Grad)
		return out, err
	}
	return l.req.Loss.Compute(l.ctx, in)
}
