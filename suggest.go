package ferry

import (
	"strconv"
	"strings"
)

// DidYouMean returns ` (did you mean "x"?)` for the candidate closest to
// word (Closest), or "" when none is close enough to be a likely typo: the
// one rule behind every "did you mean" ferry prints, for configuration
// fields and environment names alike.
func DidYouMean(word string, candidates []string) string {
	if best := Closest(word, candidates); best != "" {
		return " (did you mean " + strconv.Quote(best) + "?)"
	}
	return ""
}

// Closest returns the candidate with the smallest edit distance to word
// (ignoring case, counting a swap of neighbours as one edit) within a limit
// that grows with the word's length (1 up to 4 characters, 2 up to 8, then
// 3); ties go to the earlier candidate. A candidate equal to word is no
// suggestion.
func Closest(word string, candidates []string) string {
	w := strings.ToLower(word)
	limit := 1
	switch {
	case len(w) > 8:
		limit = 3
	case len(w) > 4:
		limit = 2
	}
	best, bestD := "", limit+1
	for _, c := range candidates {
		if c == word {
			continue
		}
		if d := distance(w, strings.ToLower(c)); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// distance is the optimal string alignment distance: insertions, deletions,
// substitutions and transpositions of adjacent characters each cost one.
func distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}
