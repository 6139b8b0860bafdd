package twotower

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"

	"github.com/cropsdev/crops/core/duck"
	"github.com/cropsdev/crops/sdk"
)

// BatchesInfo describes batches written by ExportBatches.
type BatchesInfo struct {
	Batches      int     `json:"batches"`
	B            int     `json:"b"`
	N            int     `json:"n"`
	Lq           int     `json:"lq"`
	Li           int     `json:"li"`
	Examples     []int   `json:"examples"` // labelled (query, own candidate) pairs per batch
	HashBuckets  int     `json:"hash_buckets"`
	EmbeddingDim int     `json:"embedding_dim"`
	HiddenDim    int     `json:"hidden_dim"`
	OutputDim    int     `json:"output_dim"`
	Shared       bool    `json:"shared_embeddings"`
	InitTau      float64 `json:"init_tau"`
	MinTau       float64 `json:"min_tau"`
	LearningRate float64 `json:"learning_rate"`
	WeightDecay  float64 `json:"weight_decay"`
	Queries      int     `json:"queries"`
	Pairs        int     `json:"pairs"`
	// PerPositiveRows: the batches have one row per (query, positive) pair
	// (the loss declared per_positive_rows). StepsPerEpoch is the number of
	// batches of a full epoch in that mode.
	PerPositiveRows bool  `json:"per_positive_rows,omitempty"`
	StepsPerEpoch   int64 `json:"steps_per_epoch"`
	CatalogItems    int   `json:"catalog_items"`
	// Ns is each batch's width N (rows "full" batches vary; N is then the
	// first batch's width).
	Ns []int `json:"ns,omitempty"`
}

// ExportBatches writes the first n batches of epoch 1 exactly as Train
// builds them (hashed features, tiers, valid mask) to path, so that a
// reference implementation (bench/twotower/torch_ref.py) trains the same
// architecture on the same inputs. Layout: uint64 little-endian length, the
// BatchesInfo JSON, then per batch qIds int32[B*Lq], qW float32[B*Lq],
// iIds int32[N*Li], iW float32[N*Li], tiers int32[B*N], valid uint8[B*N], with
// N = Ns[batch].
func ExportBatches(ctx context.Context, req sdk.TrainRequest, n int, path string) (BatchesInfo, error) {
	p := defaultParams()
	if err := sdk.DecodeParams(req.Params, &p); err != nil {
		return BatchesInfo{}, err
	}
	db, err := duck.Open(ctx, 0)
	if err != nil {
		return BatchesInfo{}, err
	}
	defer db.Close()
	cat, err := loadCatalog(ctx, db, req.ItemsPaths, true)
	if err != nil {
		return BatchesInfo{}, err
	}
	ts, err := loadLabels(ctx, db, req.TrainTable, cat)
	if err != nil {
		return BatchesInfo{}, err
	}
	// Batches are built in the row mode Train would use for req.Loss (one row
	// per positive when the loss declares per_positive_rows); no loss means
	// the normal mode.
	var rm rowMode
	if req.Loss != nil {
		if rm, err = lossRowMode(ctx, req.Loss, req.LossParams); err != nil {
			return BatchesInfo{}, fmt.Errorf("export batches: %w", err)
		}
	}
	t := newTrainer(p, req.Seed, rm, ts, cat)
	bs := t.epochBatches(0)
	if n > len(bs) {
		n = len(bs)
	}
	info := BatchesInfo{Batches: n, B: p.BatchQueries, N: p.BatchQueries * p.MaxCandidatesPerQuery, Lq: p.MaxQueryFeatures,
		Li: p.MaxItemFeatures, HashBuckets: p.HashBuckets, EmbeddingDim: p.EmbeddingDim, HiddenDim: p.HiddenDim,
		OutputDim: p.OutputDim, Shared: p.SharedEmbeddings, InitTau: p.InitTau, MinTau: p.MinTau,
		LearningRate: p.LearningRate, WeightDecay: p.WeightDecay, Queries: len(ts.queries), Pairs: ts.pairs, CatalogItems: len(cat.ids),
		PerPositiveRows: rm.perPositive, StepsPerEpoch: t.stepsPerEpoch()}
	if n > 0 {
		info.B, info.N = bs[0].B, bs[0].N
	}
	var body bytes.Buffer
	for _, b := range bs[:n] {
		info.Examples = append(info.Examples, b.examples)
		info.Ns = append(info.Ns, b.N)
		for _, arr := range []any{b.qIds, b.qW, b.iIds, b.iW, b.tiers} {
			if err := binary.Write(&body, binary.LittleEndian, arr); err != nil {
				return info, err
			}
		}
		v := make([]byte, len(b.valid))
		for i, x := range b.valid {
			if x {
				v[i] = 1
			}
		}
		body.Write(v)
	}
	hj, err := json.Marshal(info)
	if err != nil {
		return info, err
	}
	var out bytes.Buffer
	var l [8]byte
	binary.LittleEndian.PutUint64(l[:], uint64(len(hj)))
	out.Write(l[:])
	out.Write(hj)
	out.Write(body.Bytes())
	if err := duck.WriteFileAtomic(path, out.Bytes(), 0o644); err != nil {
		return info, fmt.Errorf("export batches: %w", err)
	}
	return info, nil
}
