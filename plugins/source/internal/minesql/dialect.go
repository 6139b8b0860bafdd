package minesql

import (
	"fmt"
	"strings"

	"github.com/cropsdev/crops/core/duck"
	"github.com/cropsdev/crops/core/spark"
)

// Dialect is the SQL dialect a mining query is rendered in. Every source has
// one SQL definition, written with the portable core both DuckDB and Spark SQL
// accept (CTEs, joins, count_if, bool_or, min_by, row_number, CAST to DOUBLE /
// STRING) plus the methods below for the constructs whose spelling differs.
// dialect_test.go runs each method on a real DuckDB, and the Spark tests run
// the same sources on a real Spark Connect server against DuckDB's output.
type Dialect int

const (
	// DuckDB is DuckDB's dialect (the embedded default engine).
	DuckDB Dialect = iota
	// Spark is Spark SQL (the spark engine, through Spark Connect).
	Spark
)

func (d Dialect) String() string {
	if d == Spark {
		return "spark"
	}
	return "duckdb"
}

// Lit quotes s as a string literal. Spark SQL reads backslash escapes inside
// literals, DuckDB does not, so a backslash is doubled for Spark.
func (d Dialect) Lit(s string) string {
	if d == Spark {
		return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
	}
	return duck.Lit(s)
}

// Table is the FROM-clause expression that reads the Parquet table at path.
func (d Dialect) Table(path string) string {
	if d == Spark {
		return spark.Table(path)
	}
	return duck.ReadParquet(path)
}

// Struct builds a struct value from name, expr pairs (for min_by keys and
// payloads; fields compare in order).
func (d Dialect) Struct(pairs ...string) string {
	var b strings.Builder
	if d == Spark {
		b.WriteString("named_struct(")
		for i := 0; i+1 < len(pairs); i += 2 {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%s, %s", d.Lit(pairs[i]), pairs[i+1])
		}
		b.WriteString(")")
		return b.String()
	}
	b.WriteString("struct_pack(")
	for i := 0; i+1 < len(pairs); i += 2 {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s := %s", duck.Ident(pairs[i]), pairs[i+1])
	}
	b.WriteString(")")
	return b.String()
}

// JSONObject renders key, expr pairs as a JSON object string, keys in the
// given order. Numbers may be spelled differently (Spark writes 1.0E-4 where
// DuckDB writes 0.0001); the values are equal.
func (d Dialect) JSONObject(pairs ...string) string {
	if d == Spark {
		return "to_json(" + d.Struct(pairs...) + ")"
	}
	var b strings.Builder
	b.WriteString("CAST(json_object(")
	for i := 0; i+1 < len(pairs); i += 2 {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s, %s", duck.Lit(pairs[i]), pairs[i+1])
	}
	b.WriteString(") AS VARCHAR)")
	return b.String()
}

// RegexpReplaceAll replaces every match of the regular expression pattern
// (RE2 in DuckDB, java.util.regex in Spark: keep to their common subset).
func (d Dialect) RegexpReplaceAll(s, pattern, repl string) string {
	if d == Spark {
		return fmt.Sprintf("regexp_replace(%s, %s, %s)", s, d.Lit(pattern), d.Lit(repl))
	}
	return fmt.Sprintf("regexp_replace(%s, %s, %s, 'g')", s, d.Lit(pattern), d.Lit(repl))
}

// TrimSpaces removes leading and trailing ' ' characters (only those).
func (d Dialect) TrimSpaces(s string) string {
	if d == Spark {
		return fmt.Sprintf("trim(BOTH ' ' FROM %s)", s)
	}
	return fmt.Sprintf("trim(%s, ' ')", s)
}

// Split splits s at every occurrence of the single character sep (not a
// regular-expression metacharacter), keeping empty parts.
func (d Dialect) Split(s string, sep string) string {
	if d == Spark {
		return fmt.Sprintf("split(%s, %s, -1)", s, d.Lit(sep))
	}
	return fmt.Sprintf("string_split(%s, %s)", s, d.Lit(sep))
}

// Distinct is the list/array without duplicates (order unspecified).
func (d Dialect) Distinct(list string) string {
	if d == Spark {
		return "array_distinct(" + list + ")"
	}
	return "list_distinct(" + list + ")"
}

// Intersect is the list/array of the distinct elements in both a and b.
func (d Dialect) Intersect(a, b string) string {
	if d == Spark {
		return fmt.Sprintf("array_intersect(%s, %s)", a, b)
	}
	return fmt.Sprintf("list_intersect(%s, %s)", a, b)
}

// Len is the number of elements of a list/array.
func (d Dialect) Len(list string) string {
	if d == Spark {
		return "size(" + list + ")"
	}
	return "len(" + list + ")"
}

// ListOf is the one-element list/array of expr.
func (d Dialect) ListOf(expr string) string {
	if d == Spark {
		return "array(" + expr + ")"
	}
	return "[" + expr + "]"
}

// Substrings is the list of the substrings of s of n characters starting at
// every position 1 .. length(s)-n+1; s must be at least n characters long.
func (d Dialect) Substrings(s string, n int) string {
	if d == Spark {
		return fmt.Sprintf("transform(sequence(1, length(%[1]s) - %[2]d + 1), i -> substr(%[1]s, i, %[2]d))", s, n)
	}
	return fmt.Sprintf("[substr(%[1]s, i, %[2]d) for i in range(1, length(%[1]s) - %[2]d + 2)]", s, n)
}
