package cli

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestReadmeLinks: every relative link of the README and of docs/ names a
// file of the repository, and every #anchor a heading of the file it
// points into — the documents the README cites exist.
func TestReadmeLinks(t *testing.T) {
	root := ".."
	docs, _ := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	files := append([]string{filepath.Join(root, "README.md")}, docs...)
	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range link.FindAllStringSubmatch(string(data), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			path, anchor, _ := strings.Cut(target, "#")
			file := f
			if path != "" {
				file = filepath.Join(filepath.Dir(f), path)
				if _, err := os.Stat(file); err != nil {
					t.Errorf("%s links to %s, which does not exist", f, target)
					continue
				}
			}
			if anchor != "" && !hasAnchor(t, file, anchor) {
				t.Errorf("%s links to %s: no heading in %s makes the anchor #%s", f, target, file, anchor)
			}
		}
	}
	// The README once cited spec/ files that were never in the repository.
	data, _ := os.ReadFile(filepath.Join(root, "README.md"))
	if regexp.MustCompile(`spec(/| §| I\d)`).Match(data) {
		t.Errorf("README.md cites spec/…: write it under docs/ instead")
	}
}

// hasAnchor reports whether a Markdown heading of file has GitHub's anchor.
func hasAnchor(t *testing.T, file, anchor string) bool {
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if !strings.HasPrefix(line, "#") {
			continue
		}
		if githubAnchor(strings.TrimLeft(line, "# ")) == anchor {
			return true
		}
	}
	return false
}

// githubAnchor is the anchor GitHub gives a heading: lower case, spaces
// to '-', everything but letters, digits, '-' and '_' dropped.
func githubAnchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r > 127 && !strings.ContainsRune("—–’…·", r):
			b.WriteRune(r)
		}
	}
	return b.String()
}
