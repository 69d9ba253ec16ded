package source

import (
	"bufio"
	"io"
	"path"
	"strings"
)

// ignoreRule is one line of a .gitignore file.
type ignoreRule struct {
	segs     []string // pattern split at '/'; "**" segments match any number of segments
	negate   bool     // "!pattern": re-include
	dirOnly  bool     // "pattern/": directories only
	anchored bool     // a '/' at the start or middle: relative to the .gitignore's directory
}

// ignoreFile is the parsed rules of one .gitignore, with the directory (slash
// separated, relative to the walk root, "" for the root) it applies below.
type ignoreFile struct {
	dir   string
	rules []ignoreRule
}

// parseIgnore reads .gitignore syntax: blank lines and '#' comments skipped,
// trailing unescaped spaces trimmed, '\' escapes a leading '#' or '!', '!'
// negates, a trailing '/' matches directories only, a leading or inner '/'
// anchors the pattern to the file's directory, '*' '?' '[...]' glob within
// a path segment and "**" spans segments.
func parseIgnore(dir string, r io.Reader) ignoreFile {
	f := ignoreFile{dir: dir}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	for sc.Scan() {
		if r, ok := parseIgnoreLine(sc.Text()); ok {
			f.rules = append(f.rules, r)
		}
	}
	return f
}

func parseIgnoreLine(line string) (ignoreRule, bool) {
	line = strings.TrimSuffix(line, "\r")
	// Trailing spaces are ignored unless escaped with a backslash.
	for strings.HasSuffix(line, " ") && !strings.HasSuffix(line, "\\ ") {
		line = line[:len(line)-1]
	}
	if line == "" || line[0] == '#' {
		return ignoreRule{}, false
	}
	var r ignoreRule
	if line[0] == '!' {
		r.negate = true
		line = line[1:]
	} else if strings.HasPrefix(line, `\!`) || strings.HasPrefix(line, `\#`) {
		line = line[1:]
	}
	if strings.HasSuffix(line, "/") {
		r.dirOnly = true
		line = strings.TrimRight(line, "/")
	}
	if line == "" {
		return ignoreRule{}, false
	}
	if strings.Contains(line, "/") {
		r.anchored = true
		line = strings.TrimPrefix(line, "/")
	}
	// gitignore's "[!...]" is path.Match's "[^...]".
	line = strings.ReplaceAll(line, "[!", "[^")
	r.segs = strings.Split(line, "/")
	// Collapse runs of "**" so matching stays linear in practice.
	segs := r.segs[:0]
	for _, s := range r.segs {
		if s == "**" && len(segs) > 0 && segs[len(segs)-1] == "**" {
			continue
		}
		segs = append(segs, s)
	}
	// "dir/**" matches everything inside dir but not dir itself: at least
	// one more segment, i.e. "dir/*/**".
	if n := len(segs); n > 1 && segs[n-1] == "**" {
		segs = append(segs[:n-1], "*", "**")
	}
	r.segs = segs
	return r, true
}

// match reports whether the rule matches rel, a slash-separated path relative
// to the .gitignore's directory.
func (r *ignoreRule) match(rel string, isDir bool) bool {
	if r.dirOnly && !isDir {
		return false
	}
	if !r.anchored {
		ok, _ := path.Match(r.segs[0], path.Base(rel))
		return ok
	}
	return matchSegs(r.segs, strings.Split(rel, "/"))
}

// matchSegs matches pattern segments against path segments, "**" matching
// zero or more whole segments. It is the classic wildcard algorithm that
// backtracks only to the last "**", so time is O(len(pat)·len(segs)) whatever
// a hostile .gitignore holds.
func matchSegs(pat, segs []string) bool {
	p, s := 0, 0
	starP, starS := -1, 0
	for s < len(segs) {
		switch {
		case p < len(pat) && pat[p] == "**":
			starP, starS = p, s
			p++
		case p < len(pat) && segMatch(pat[p], segs[s]):
			p++
			s++
		case starP >= 0:
			p = starP + 1
			starS++
			s = starS
		default:
			return false
		}
	}
	for p < len(pat) && pat[p] == "**" {
		p++
	}
	return p == len(pat)
}

func segMatch(pattern, seg string) bool {
	ok, _ := path.Match(pattern, seg)
	return ok
}

// ignorer is the stack of .gitignore files that apply to one directory.
type ignorer struct {
	files []ignoreFile // outermost first
}

// with returns the ignorer for a subdirectory that has its own .gitignore.
func (ig *ignorer) with(f ignoreFile) *ignorer {
	if len(f.rules) == 0 {
		return ig
	}
	files := make([]ignoreFile, len(ig.files), len(ig.files)+1)
	copy(files, ig.files)
	return &ignorer{files: append(files, f)}
}

// ignored reports whether rel (slash-separated, relative to the walk root)
// is ignored. The last matching rule wins, deeper files taking precedence.
func (ig *ignorer) ignored(rel string, isDir bool) bool {
	if ig == nil {
		return false
	}
	for i := len(ig.files) - 1; i >= 0; i-- {
		f := &ig.files[i]
		sub := rel
		if f.dir != "" {
			if !strings.HasPrefix(rel, f.dir+"/") {
				continue
			}
			sub = rel[len(f.dir)+1:]
		}
		for j := len(f.rules) - 1; j >= 0; j-- {
			if f.rules[j].match(sub, isDir) {
				return !f.rules[j].negate
			}
		}
	}
	return false
}
