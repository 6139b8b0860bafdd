package report

import (
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"sort"
	"strings"

	"gonum.org/v1/gonum/stat/distuv"
)

// Cell is one arm x metric entry.
type Cell struct {
	HasValue bool
	Mean     float64 // mean over the arm's finished seeds
	Std      float64 // sample standard deviation over seeds (0 for one seed)
	Seeds    int
	HasDelta bool    // a baseline comparison exists
	Delta    float64 // Mean - baseline Mean
	HasTest  bool    // a paired test ran (per-query metrics, >= 2 common queries or worlds)
	P        float64 // two-sided p-value
	N        int     // paired units (queries, or worlds: Table.Unit)
	DeltaSD  float64 // sample standard deviation of the paired differences
	Sig      bool    // P < alpha
}

// Row is one arm.
type Row struct {
	Arm    string
	Failed string // non-empty when some seed failed: "seed N: stage: reason"
	// Partial is non-empty when some seed used a partial stage.
	Partial string
	Cells   []Cell
	TrainS  float64 // mean training wall time over seeds (0 if unknown)
	Seeds   int     // finished seeds
}

// Table is the comparison table.
type Table struct {
	Name     string
	Metrics  []string
	Baseline string
	Test     string // "t-test" or "bootstrap"
	Alpha    float64
	Rows     []Row
	// Unit is what the test pairs: "queries" (one world) or "worlds" (a run
	// over several worlds: per world, the arm's mean over train seeds).
	Unit   string
	Worlds int // worlds in the table (1 for a one-world run)
	// InprocessBuiltins marks a run whose built-in plugins ran in-process.
	InprocessBuiltins bool
}

// BootstrapResamples is the number of paired bootstrap resamples.
const BootstrapResamples = 10000

// Build aggregates results into a table. baseline "" uses the index's.
//
// Significance: per query, an arm's value is the mean over its finished
// seeds; the arm and the baseline are paired over the queries both have.
// "t-test" is a two-sided paired Student t-test on the differences; when the
// differences have zero variance the test is degenerate and p is 1 if they
// are all zero, else 0. "bootstrap" is a two-sided paired bootstrap of the
// mean difference (BootstrapResamples resamples, PCG seeded from a hash of
// arm and metric, so reports are reproducible): p = 2 x min(share of
// resampled means <= 0, share >= 0), capped at 1. Catalog metrics (coverage)
// have no per-query values and get no test.
func Build(res *Results, baseline string) (*Table, error) {
	idx := res.Index
	if baseline == "" {
		baseline = idx.Baseline
	}
	if baseline != "" {
		if _, ok := res.Runs[baseline]; !ok {
			return nil, fmt.Errorf("baseline %q is not an arm of %s (arms: %s)", baseline, res.Dir, strings.Join(idx.Arms, ", "))
		}
	}
	worlds := res.worldIDs()
	multi := len(worlds) > 1
	t := &Table{Name: idx.Name, Metrics: idx.Metrics, Baseline: baseline, Test: idx.Significance, Alpha: idx.Alpha, Unit: "queries", Worlds: len(worlds), InprocessBuiltins: idx.InprocessBuiltins}
	if multi {
		t.Unit = "worlds"
	}
	if t.Test == "" {
		t.Test = "t-test"
	}
	if t.Alpha == 0 {
		t.Alpha = 0.05
	}
	type agg = metricAgg
	aggregate := func(arm string) (map[string]*agg, Row) {
		row := Row{Arm: arm}
		out := map[string]*agg{}
		sums := map[string]map[string]float64{}
		counts := map[string]map[string]int{}
		wsums := map[string]map[string]float64{}
		wcounts := map[string]map[string]int{}
		var fails, partial []string
		trainSum := 0.0
		for _, key := range res.Keys() {
			as := res.Runs[arm][key]
			if as == nil {
				continue
			}
			if as.Status != StatusOK {
				msg := fmt.Sprintf("seed %d", key.Seed)
				if key.World != "" {
					msg = key.World + " " + msg
				}
				if as.Failed != "" {
					msg += " at " + as.Failed
				}
				fails = append(fails, msg+": "+as.Error)
				continue
			}
			row.Seeds++
			trainSum += as.TrainS
			for _, p := range as.Partial {
				partial = append(partial, fmt.Sprintf("seed %d %s", key.Seed, p))
			}
			for _, v := range as.Metrics {
				if v.Queries == 0 {
					continue // an empty test set (e.g. no reformulations): no value, not 0
				}
				a := out[v.Metric]
				if a == nil {
					a = &agg{}
					out[v.Metric] = a
					sums[v.Metric] = map[string]float64{}
					counts[v.Metric] = map[string]int{}
					wsums[v.Metric] = map[string]float64{}
					wcounts[v.Metric] = map[string]int{}
				}
				a.seedMeans = append(a.seedMeans, v.Mean)
				wsums[v.Metric][key.World] += v.Mean
				wcounts[v.Metric][key.World]++
				for q, x := range v.PerQuery {
					// Queries of different worlds are different queries.
					qk := key.World + "\x00" + q
					sums[v.Metric][qk] += x
					counts[v.Metric][qk]++
				}
			}
		}
		for m, a := range out {
			a.perWorld = map[string]float64{}
			for w, x := range wsums[m] {
				a.perWorld[w] = x / float64(wcounts[m][w])
			}
			if len(sums[m]) > 0 {
				a.perQuery = map[string]float64{}
				for q, s := range sums[m] {
					a.perQuery[q] = s / float64(counts[m][q])
				}
			}
		}
		if row.Seeds > 0 {
			row.TrainS = trainSum / float64(row.Seeds)
		}
		row.Failed = strings.Join(fails, "; ")
		row.Partial = strings.Join(partial, "; ")
		return out, row
	}
	var base map[string]*agg
	if baseline != "" {
		base, _ = aggregate(baseline)
	}
	for _, arm := range idx.Arms {
		a, row := aggregate(arm)
		for _, m := range idx.Metrics {
			c := Cell{}
			if x := a[m]; x != nil && len(x.seedMeans) > 0 {
				c.HasValue = true
				c.Seeds = len(x.seedMeans)
				c.Mean, c.Std = meanStd(x.seedMeans)
				if b := base[m]; arm != baseline && b != nil && len(b.seedMeans) > 0 {
					t.compare(&c, x, b, multi, arm+"\x00"+m)
				}
			}
			row.Cells = append(row.Cells, c)
		}
		t.Rows = append(t.Rows, row)
	}
	return t, nil
}

// metricAgg is one arm's metric over its finished seeds.
type metricAgg struct {
	seedMeans []float64          // one per finished (world, seed)
	perQuery  map[string]float64 // mean over seeds; key world + "\x00" + query
	perWorld  map[string]float64 // mean over the world's seeds
}

// compare fills c's difference to the baseline b and, when both have
// paired values on >= 2 common units, the paired test (salt seeds the
// bootstrap). One world: the units are queries. Several (multi): worlds
// (the per-world mean over train seeds), the unit that varies.
func (t *Table) compare(c *Cell, x, b *metricAgg, multi bool, salt string) {
	bm, _ := meanStd(b.seedMeans)
	c.HasDelta = true
	c.Delta = c.Mean - bm
	xs, bs := x.perQuery, b.perQuery
	if multi {
		xs, bs = x.perWorld, b.perWorld
	}
	if xs == nil || bs == nil {
		return
	}
	var d []float64
	for _, q := range sortedKeys(xs) {
		if bv, ok := bs[q]; ok {
			d = append(d, xs[q]-bv)
		}
	}
	if len(d) < 2 {
		return
	}
	c.HasTest = true
	c.N = len(d)
	_, c.DeltaSD = meanStd(d)
	if t.Test == "bootstrap" {
		c.P = bootstrapP(d, salt)
	} else {
		c.P = pairedTP(d)
	}
	c.Sig = c.P < t.Alpha
}

func meanStd(xs []float64) (float64, float64) {
	if len(xs) == 0 {
		return 0, 0
	}
	m := 0.0
	for _, x := range xs {
		m += x
	}
	m /= float64(len(xs))
	if len(xs) < 2 {
		return m, 0
	}
	ss := 0.0
	for _, x := range xs {
		ss += (x - m) * (x - m)
	}
	return m, math.Sqrt(ss / float64(len(xs)-1))
}

// pairedTP is the two-sided p-value of a paired t-test on differences d.
func pairedTP(d []float64) float64 {
	m, s := meanStd(d)
	if s == 0 {
		if m == 0 {
			return 1
		}
		return 0
	}
	n := float64(len(d))
	tv := m / (s / math.Sqrt(n))
	st := distuv.StudentsT{Mu: 0, Sigma: 1, Nu: n - 1}
	return math.Min(1, 2*st.CDF(-math.Abs(tv)))
}

// bootstrapP is the two-sided paired bootstrap p-value of mean(d) != 0.
func bootstrapP(d []float64, salt string) float64 {
	h := fnv.New64a()
	h.Write([]byte(salt))
	rng := rand.New(rand.NewPCG(0x63726f7073, h.Sum64()))
	le, ge := 0, 0
	n := len(d)
	for range BootstrapResamples {
		s := 0.0
		for range n {
			s += d[rng.IntN(n)]
		}
		if s <= 0 {
			le++
		}
		if s >= 0 {
			ge++
		}
	}
	p := 2 * float64(min(le, ge)) / BootstrapResamples
	return math.Min(1, p)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
