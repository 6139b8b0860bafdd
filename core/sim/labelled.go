package sim

import (
	"context"
	"math/rand/v2"

	"github.com/cropsdev/crops/core/dataset"
)

// The labelled relevance sample (relevance_labels.parquet, world v2): the
// stand-in for the paper's hand-labelled set that trains and calibrates the
// gate's discriminator theta. Annotators judge a pool of (query, item) pairs
// for a sample of TRAIN queries; the pool mixes what a real labelling
// campaign pools:
//   - up to labelExposed of the query's exposed train results (mostly
//     relevant: what the funnel showed),
//   - up to labelTopic items of a topic that can produce the query but that
//     train never showed for it (relevant, or the wrong facet / low quality:
//     what the bubble hides),
//   - labelRandom catalogue items drawn uniformly (mostly irrelevant).
//
// The grade is the world's truth (as qrels: the max over the intents that
// can produce the query, 0 when none matches) plus annotator noise: with
// probability LabelNoise the grade moves one step up or down (clipped to
// 0..3). Folds split the sampled queries 60/20/20 into train, calibrate and
// test. Everything draws from its own seeded stream (saltLabels), after every
// other table is written, so the existing tables are byte-identical with or
// without it.
const (
	labelExposed = 6
	labelTopic   = 4
	labelRandom  = 6
	saltLabels   = 0x6c6162656c73 // "labels"
)

// DefaultLabelQueries and DefaultLabelNoise are the sample's defaults (see
// docs/simulated-world.md): label_queries and label_noise in a spec.
const (
	DefaultLabelQueries = 400
	DefaultLabelNoise   = 0.1
)

func (s Spec) labelQueries() int {
	if s.LabelQueries > 0 {
		return s.LabelQueries
	}
	return DefaultLabelQueries
}

func (s Spec) labelNoise() float64 {
	if s.LabelNoise != nil {
		return *s.LabelNoise
	}
	return DefaultLabelNoise
}

// writeLabels stages the labelled sample. It needs the v2 generator's record
// of train queries and train exposures.
func (g *generator) writeLabels(ctx context.Context) error {
	w := g.w
	r := rand.New(rand.NewPCG(w.Seed, saltLabels))
	var train []int32
	for _, qid := range g.sorted {
		if int(qid) < len(g.v2.trainSeen) && g.v2.trainSeen[qid] {
			train = append(train, qid)
		}
	}
	r.Shuffle(len(train), func(a, b int) { train[a], train[b] = train[b], train[a] })
	if n := w.Spec.labelQueries(); len(train) > n {
		train = train[:n]
	}
	noise := w.Spec.labelNoise()
	// Exposed train items per sampled query, in catalogue order.
	for k, qid := range train {
		if k%64 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		fold := dataset.FoldTrain
		switch {
		case k*5 >= len(train)*4:
			fold = dataset.FoldTest
		case k*5 >= len(train)*3:
			fold = dataset.FoldCalibrate
		}
		q := g.queries[qid]
		prod := w.Producers(q)
		pool := g.labelPool(r, qid, prod)
		for _, it := range pool {
			grade := 0
			item := &w.Items[it]
			for _, in := range prod {
				grade = max(grade, gradeOf(in, int(item.Topic), int(item.Facet), item.LowQuality))
			}
			if r.Float64() < noise {
				if grade == 0 || (grade < 3 && r.IntN(2) == 0) {
					grade++
				} else {
					grade--
				}
			}
			if err := g.st.table(dataset.LabelsTable).str(q.String()).str(g.itemIDs[it]).i32(int32(grade)).str(fold).end(); err != nil {
				return err
			}
		}
	}
	return nil
}

// labelPool draws the items annotators judge for query qid: exposed train
// results, unexposed items of a producing topic, random catalogue items; no
// item twice.
func (g *generator) labelPool(r *rand.Rand, qid int32, prod []Intent) []int32 {
	w := g.w
	seen := map[int32]bool{}
	var pool []int32
	add := func(it int32) bool {
		if seen[it] {
			return false
		}
		seen[it] = true
		pool = append(pool, it)
		return true
	}
	var exposed, hidden []int32
	var topics []int
	for _, in := range prod {
		if len(topics) == 0 || topics[len(topics)-1] != in.Topic {
			topics = append(topics, in.Topic)
		}
	}
	g.v2.trainExposed.use(qid)
	for _, t := range topics {
		for _, it := range w.Topics[t].Items {
			if g.v2.trainExposed.has(it) {
				exposed = append(exposed, it)
			} else {
				hidden = append(hidden, it)
			}
		}
	}
	for _, part := range []struct {
		from []int32
		n    int
	}{{exposed, labelExposed}, {hidden, labelTopic}} {
		for n, tries := 0, 0; n < part.n && tries < 4*part.n && len(part.from) > 0; tries++ {
			if add(part.from[r.IntN(len(part.from))]) {
				n++
			}
		}
	}
	for n, tries := 0, 0; n < labelRandom && tries < 4*labelRandom; tries++ {
		if add(int32(r.IntN(len(w.Items)))) {
			n++
		}
	}
	return pool
}
