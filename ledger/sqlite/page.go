package sqlite

import "strings"

// page is a list read newest first from one table: equality filters (an
// empty value filters nothing), a set of states, a cursor and a limit.
// The action, request and notification lists share it.
type page struct {
	eq       [][2]string // column, value
	states   []string
	beforeID int64
	limit    int
}

// query is the SELECT of columns from table with p's filters, and its
// arguments.
func (p page) query(columns, table string) (string, []any) {
	var (
		where []string
		args  []any
	)
	for _, eq := range p.eq {
		if eq[1] != "" {
			where = append(where, eq[0]+" = ?")
			args = append(args, eq[1])
		}
	}
	if len(p.states) > 0 {
		where = append(where, "state IN ("+placeholders(len(p.states))+")")
		for _, st := range p.states {
			args = append(args, st)
		}
	}
	if p.beforeID > 0 {
		where = append(where, "id < ?")
		args = append(args, p.beforeID)
	}
	query := `SELECT ` + columns + ` FROM ` + table
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, " AND ")
	}
	return query + ` ORDER BY id DESC LIMIT ?`, append(args, p.limit)
}
