package sim

// pairSet is a set of (query id, item) pairs kept per query. The writers
// that test it (qrels, truth, the labelled sample) walk one query at a time
// over millions of (query, item) pairs; hashing every pair into one big map
// was a cache miss per pair (5% of world v2's CPU at medium scale). Here a
// query's items are marked in one flag per catalogue item (use), and a test
// is one load (has).
type pairSet struct {
	items [][]int32 // query id -> items added (repeats included)
	mark  []bool    // item -> in the used query's set
	cur   int32     // the query whose items are marked, -1 none
}

func newPairSet(nItems int) *pairSet {
	return &pairSet{mark: make([]bool, nItems), cur: -1}
}

// add puts (q, it) in the set.
func (p *pairSet) add(q, it int32) {
	for int(q) >= len(p.items) {
		p.items = append(p.items, nil)
	}
	p.items[q] = append(p.items[q], it)
	if q == p.cur {
		p.mark[it] = true
	}
}

// use makes has answer for query q.
func (p *pairSet) use(q int32) {
	if q == p.cur {
		return
	}
	if p.cur >= 0 && int(p.cur) < len(p.items) {
		for _, it := range p.items[p.cur] {
			p.mark[it] = false
		}
	}
	p.cur = q
	if int(q) < len(p.items) {
		for _, it := range p.items[q] {
			p.mark[it] = true
		}
	}
}

// has reports whether (q, it) is in the set, q being the query of the last
// use.
func (p *pairSet) has(it int32) bool { return p.mark[it] }
