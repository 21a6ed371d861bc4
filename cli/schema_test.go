package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kanbanchaos/kanbanchaos/internal/runtest"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

// TestJSONSchema validates what every --json command really prints against
// docs/kanbanchaos.schema.json, and checks the units everywhere in it: no
// key left in nanoseconds or seconds, every _at an RFC 3339 time.
func TestJSONSchema(t *testing.T) {
	runtest.Long(t, "runs real scenarios")
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	schema, err := c.Compile("../docs/kanbanchaos.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	arts := t.TempDir()
	ctx := context.Background()
	docs := func(args ...string) []string {
		var stdout, stderr bytes.Buffer
		code := run(ctx, args, &stdout, &stderr)
		if code != exitPass && code != exitFail {
			t.Fatalf("kanbanchaos %q: exit %d\n%s", args, code, stderr.String())
		}
		// One indented object, or one object per line (fuzz, gate).
		if strings.HasPrefix(stdout.String(), "{\n") {
			return []string{stdout.String()}
		}
		var lines []string
		sc := bufio.NewScanner(&stdout)
		sc.Buffer(nil, 1<<24)
		for sc.Scan() {
			lines = append(lines, sc.Text())
		}
		return lines
	}
	var all []string
	all = append(all, docs("version", "--json")...)
	all = append(all, docs("run", "issue-30417", "--seed", "3", "--json", "--artifacts", arts)...)
	all = append(all, docs("run", "issue-30417", "--seed", "3", "--variant", "fixed", "--json", "--artifacts", arts)...)
	all = append(all, docs("check", filepath.Join(arts, "latest"), "--json")...)
	all = append(all, docs("compare", "--a", "hermes-0.15", "--b", "fixed", "--scenario", "issue-30417", "--runs", "1", "--json", "--artifacts", filepath.Join(arts, "cmp"))...)
	all = append(all, docs("fuzz", "--scenario", "issue-30417", "--variant", "fixed", "--runs", "2", "--seed", "1", "--json", "--artifacts", filepath.Join(arts, "fuzz"))...)
	all = append(all, docs("gate", "--subject", "fixed", "--pins", "no-repromotion", "--seeds", "1", "--json", "--artifacts", filepath.Join(arts, "gate"))...)
	types := map[string]bool{}
	for _, doc := range all {
		v, err := jsonschema.UnmarshalJSON(strings.NewReader(doc))
		if err != nil {
			t.Fatalf("not JSON: %v\n%s", err, doc)
		}
		if err := schema.Validate(v); err != nil {
			t.Errorf("does not validate: %v\n%.2000s", err, doc)
		}
		var top map[string]any
		json.Unmarshal([]byte(doc), &top)
		types[top["type"].(string)] = true
		checkUnits(t, "", top)
	}
	for _, want := range []string{"version", "run", "check", "compare", "summary", "gate"} {
		if !types[want] {
			t.Errorf("no %q document was validated", want)
		}
	}
	if _, err := os.Stat(filepath.Join(arts, "latest")); err != nil {
		t.Errorf("the failing run was not kept in the store: %v", err)
	}
}

// checkUnits walks a document: every key in the documented units.
func checkUnits(t *testing.T, path string, v any) {
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			// Evidence and schedules are free-form maps the oracle and
			// the scenario author fill; their keys are data, not fields.
			if k == "evidence" || k == "knobs" {
				continue
			}
			if !isUnitKey(k) {
				t.Errorf("%s.%s: a key in another unit than ms (durations) or RFC 3339 (times)", path, k)
			}
			checkUnits(t, path+"."+k, val)
		}
	case []any:
		for _, e := range x {
			checkUnits(t, path+"[]", e)
		}
	}
}
