// Package equivtest holds the tests that run every built-in SQL source on
// DuckDB and on Spark (through Spark Connect) and require the same rows. It
// has no code of its own.
package equivtest
