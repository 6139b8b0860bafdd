package dataset

import "regexp"

// A remote dataset is one addressed by a URL with a scheme (s3a://bucket/w,
// hdfs://nn/w, gs://, abfs://, file:///abs/w, ...): crops never reads it
// itself; only Spark does (docs/scale.md, "Data on object storage").
var remoteURL = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*://`)

// IsRemote reports whether path is a URL with a scheme rather than a local
// directory.
func IsRemote(path string) bool { return remoteURL.MatchString(path) }
