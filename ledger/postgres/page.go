package postgres

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
func (p page) query(columns, table string) (string, params) {
	var (
		where []string
		args  params
	)
	for _, eq := range p.eq {
		if eq[1] != "" {
			where = append(where, eq[0]+" = "+args.add(eq[1]))
		}
	}
	if len(p.states) > 0 {
		where = append(where, "state = ANY("+args.add(p.states)+")")
	}
	if p.beforeID > 0 {
		where = append(where, "id < "+args.add(p.beforeID))
	}
	query := `SELECT ` + columns + ` FROM ` + table
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, " AND ")
	}
	return query + ` ORDER BY id DESC LIMIT ` + args.add(p.limit), args
}
