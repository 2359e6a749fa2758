package config

import (
	"fmt"
	"strings"
)

// Problem is one thing wrong (or, as a warning, worth a look) in a
// configuration file, located by file, line and dotted field path.
type Problem struct {
	File   string // the file name as given to Parse or Load
	Line   int    // 1-based; 0 when the problem has no single place
	Column int    // 1-based; 0 when unknown
	// Field is the dotted path of the field, e.g. "environments.prod.from" or
	// "environments.dev.verify[0].http"; empty for file-level problems such
	// as a syntax error.
	Field   string
	Message string
}

// String renders the problem as "file:line: field: message", leaving out
// the parts that are unknown.
func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d", p.Line)
	}
	b.WriteString(": ")
	if p.Field != "" {
		b.WriteString(p.Field)
		b.WriteString(": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// Error is every problem found in one configuration file. Parse and Load
// return it whenever the file is unusable; it carries all the problems, not
// only the first, ordered by line.
type Error struct {
	Problems []Problem
	// Warnings found while checking the file, shown by `ferry config check`
	// even when the file has errors.
	Warnings []Problem
}

// Error prints one problem per line.
func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}
