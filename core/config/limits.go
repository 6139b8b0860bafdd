package config

// Limits bounds what a dataset may hold before the runner accepts it (the
// validator's limits; see core/dataset). Zero means the default.
type Limits struct {
	// MaxTextBytes is the longest query or item text, in bytes (default 10000).
	MaxTextBytes int `koanf:"max_text_bytes" json:"max_text_bytes,omitempty"`
	// MaxRowsPerRequest is the most search rows one request may have (default 10000).
	MaxRowsPerRequest int `koanf:"max_rows_per_request" json:"max_rows_per_request,omitempty"`
	// MaxFeedItemsPerUser is the most feed rows one user may have (default 100000).
	MaxFeedItemsPerUser int `koanf:"max_feed_items_per_user" json:"max_feed_items_per_user,omitempty"`
}

// checkLimits rejects negative limits (0 keeps the default).
func (r *resolver) checkLimits(l Limits) {
	for _, c := range []struct {
		key string
		v   int
	}{{"max_text_bytes", l.MaxTextBytes}, {"max_rows_per_request", l.MaxRowsPerRequest}, {"max_feed_items_per_user", l.MaxFeedItemsPerUser}} {
		if c.v < 0 {
			r.errAt(p("limits", c.key), false, "leave it out (or 0) for the default", "limits.%s must be positive, got %d", c.key, c.v)
		}
	}
}
