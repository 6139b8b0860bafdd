package dataset

// needsWholeSearch says whether a check is wrong on a search table holding
// only some requests' rows (ValidateOptions.PartialSearch): split naming a
// request search lacks is then expected, not a finding.
func needsWholeSearch(check string) bool { return check == "split_unknown_request" }

// partial drops, for a partial search table, the checks that need the whole
// log; every other check runs on the rows that are there.
func (v *validator) partial(cs []check) []check {
	if !v.opts.PartialSearch {
		return cs
	}
	out := cs[:0:0]
	for _, c := range cs {
		if !needsWholeSearch(c.name) {
			out = append(out, c)
		}
	}
	return out
}
