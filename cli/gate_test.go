package cli

import (
	"encoding/json"
	"encoding/xml"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/kanbanchaos/kanbanchaos/campaign/gate"
	"github.com/kanbanchaos/kanbanchaos/hermes"
)

// TestGatePins is this repository's regression test for every known
// regression, from the gate's own entries (one definition, two uses): the
// fixed variant holds every entry; each entry's Pin variant — the model of
// the release that has the bug — violates it, named by the entry and its
// invariants, never by a count only our Go model produces.
func TestGatePins(t *testing.T) {
	t.Parallel()
	junit := filepath.Join(t.TempDir(), "gate.xml")
	code, stdout, stderr := kc(t, "gate", "--subject", "fixed", "--seeds", "1", "--junit", junit)
	if code != exitPass || !strings.Contains(stdout, "gate: PASS") {
		t.Fatalf("fixed: exit %d\n%s\n%s", code, stdout, stderr)
	}
	var want []string
	for _, name := range gate.Names() {
		want = append(want, "gate/"+name)
	}
	if names := junitNames(t, junit); !slices.Equal(names, want) {
		t.Errorf("JUnit test names %q, want %q (stable, seed-free)", names, want)
	}
	byPin := map[string][]gate.Entry{}
	for _, e := range gate.Entries() {
		if e.Pin != "" {
			byPin[e.Pin] = append(byPin[e.Pin], e)
		}
	}
	for pin, entries := range byPin {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name)
		}
		code, stdout, stderr := kc(t, "gate", "--subject", pin, "--pins", strings.Join(names, ","), "--seeds", "1")
		if code != exitFail {
			t.Errorf("%s: exit %d, want 1\n%s\n%s", pin, code, stdout, stderr)
			continue
		}
		for _, e := range entries {
			if !regexp.MustCompile(`(?m)^VIOLATED +` + regexp.QuoteMeta(e.Name) + ` `).MatchString(stdout) {
				t.Errorf("%s does not violate %s (%s):\n%s", pin, e.Name, e.Issues, stdout)
			}
		}
	}
}

// TestGateShardsMergeToTheWhole: three shards merged give the same entries,
// seeds and statuses as one unsharded gate.
func TestGateShardsMergeToTheWhole(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	args := []string{"gate", "--subject", "hermes-0.14", "--pins", "configured-limit,unknown-assignee,exit-75-cooldown", "--seeds", "2", "--json"}
	_, whole, stderr := kc(t, args...)
	var want gateRun
	if err := json.Unmarshal([]byte(whole), &want); err != nil {
		t.Fatalf("%v\n%s\n%s", err, whole, stderr)
	}
	var shards []string
	for i := range 3 {
		_, out, _ := kc(t, append(args, "--shard", []string{"0/3", "1/3", "2/3"}[i])...)
		path := filepath.Join(dir, []string{"a", "b", "c"}[i]+".json")
		os.WriteFile(path, []byte(out), 0o644)
		shards = append(shards, path)
	}
	code, merged, stderr := kc(t, append([]string{"merge", "--json"}, shards...)...)
	var got gateRun
	if err := json.Unmarshal([]byte(merged), &got); err != nil {
		t.Fatalf("merge: exit %d: %v\n%s\n%s", code, err, merged, stderr)
	}
	if code != exitFail {
		t.Errorf("merge exit %d, want 1 as the whole gate", code)
	}
	summary := func(g gateRun) []string {
		var out []string
		for _, r := range g.Entries {
			for _, s := range r.Seeds {
				out = append(out, r.Name+"/"+string(r.Status)+"/"+string(s.Status)+"/"+string(rune('0'+s.Seed)))
			}
		}
		return out
	}
	if !slices.Equal(summary(got), summary(want)) {
		t.Errorf("merged shards %q, want the unsharded gate's %q", summary(got), summary(want))
	}
	// Overlapping shards are refused.
	if code, _, stderr := kc(t, "merge", shards[0], shards[0]); code != exitUsage || !strings.Contains(stderr, "overlap") {
		t.Errorf("overlapping shards: exit %d %s", code, stderr)
	}
}

func TestGateUsage(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"gate"}, "want --subject"},
		{[]string{"gate", "--subject", "fixed", "--pins", "nope"}, `unknown gate entry "nope"`},
		{[]string{"gate", "--subject", "fixed", "--allow-unchecked", "nope"}, `unknown entry "nope"`},
		{[]string{"gate", "--subject", "fixed", "--seeds", "0"}, "--seeds 0"},
		{[]string{"gate", "--subject", "hermes:latest"}, "neither a release version"},
		{[]string{"gate", "--subject", "hermes-9"}, "want exec:"},
	} {
		code, _, stderr := kc(t, c.args...)
		if code != exitUsage || !strings.Contains(stderr, c.want) {
			t.Errorf("%q: exit %d, stderr %q; want exit 2 saying %q", c.args, code, stderr, c.want)
		}
	}
	if code, stdout, _ := kc(t, "gate", "--help"); code != exitPass && !strings.Contains(stdout, "") {
		t.Errorf("gate --help exit %d", code)
	}
	if len(gate.Names()) < 10 {
		t.Errorf("gate entries %q", gate.Names())
	}
}

func junitNames(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc junitDoc
	if err := xml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	var names []string
	for _, c := range doc.Suites[0].Cases {
		names = append(names, c.Name)
	}
	return names
}

// TestJUnitValidatesAgainstStrictSchema: the gate's and fuzz's JUnit files
// validate against Jenkins' junit-10.xsd (installed by
// .ci/install-junit-xsd), and their test names do not change with the
// seeds: a CI system can follow each test across runs.
func TestJUnitValidatesAgainstStrictSchema(t *testing.T) {
	t.Parallel()
	xmllint, err := exec.LookPath("xmllint")
	root, rerr := hermes.CacheRoot()
	xsd := filepath.Join(root, "junit-10.xsd")
	if _, serr := os.Stat(xsd); err != nil || rerr != nil || serr != nil {
		t.Skipf("needs xmllint and %s: run .ci/install-junit-xsd (CI does)", xsd)
	}
	dir := t.TempDir()
	var names [2][]string
	for i, seed := range []string{"11", "12"} {
		files := map[string][]string{
			"gate": {"gate", "--subject", "hermes-0.14", "--pins", "unknown-assignee,board-routing", "--seeds", "1"},
			"fuzz": append([]string{"fuzz", "--scenario", "issue-30896", "--variant", "hermes-0.15", "--runs", "2", "--seed", seed,
				"--keep-going", "--shrink-time", "0"}, quick...),
		}
		for _, kind := range []string{"gate", "fuzz"} {
			path := filepath.Join(dir, kind+seed+".xml")
			kc(t, append(files[kind], "--junit", path)...)
			out, err := exec.Command(xmllint, "--noout", "--schema", xsd, path).CombinedOutput()
			if err != nil {
				data, _ := os.ReadFile(path)
				t.Fatalf("%s JUnit does not validate: %v\n%s\n%s", kind, err, out, data)
			}
			names[i] = append(names[i], junitNames(t, path)...)
		}
	}
	if !slices.Equal(names[0], names[1]) {
		t.Errorf("test names changed with the seed: %q vs %q", names[0], names[1])
	}
}

// TestConformance holds hermes-0.19 (≈ the June snapshot plus 0.19's
// exit-0 streak of 3) up to spec §8: every row matches but exit 0, where
// the streak gives 4 starts instead of 2 — and the report says so.
func TestConformance(t *testing.T) {
	t.Parallel()
	code, stdout, stderr := kc(t, "gate", "--conformance", "--subject", "hermes-0.19", "--json")
	if code != exitPass {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	var rep struct {
		Cases     []gate.Case     `json:"cases"`
		Observed  []gate.Observed `json:"observed"`
		Surprises []gate.Surprise `json:"surprises"`
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	if len(rep.Observed) != len(gate.Cases()) {
		t.Fatalf("%d observed cases, want %d", len(rep.Observed), len(gate.Cases()))
	}
	for _, o := range rep.Observed {
		differs := len(o.Differs) > 0
		if differs != (o.Case == "exit-0") {
			t.Errorf("%s: differs %q", o.Case, o.Differs)
		}
		if o.Case == "exit-0" && o.Starts != 4 {
			t.Errorf("exit-0: %d starts, want 4 (a streak of 3, then the trip and one re-promotion)", o.Starts)
		}
	}
	// hermes-0.19 models both surprises of the June release.
	if len(rep.Surprises) != 2 || !rep.Surprises[0].Stands || !rep.Surprises[1].Stands {
		t.Errorf("surprises %+v: both should stand for hermes-0.19", rep.Surprises)
	}
}
