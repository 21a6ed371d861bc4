package cli

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"

	"github.com/kanbanchaos/kanbanchaos/campaign"
	"github.com/kanbanchaos/kanbanchaos/campaign/gate"
)

// cmdMerge combines the --json outputs of a campaign's shards into the
// whole campaign's summary and verdict, with fuzz's exit codes.
func cmdMerge(args []string, stdout, stderr io.Writer) int {
	var asJSON bool
	var junit string
	fs := newFlagSet("merge", "Usage: kanbanchaos merge SHARD… [--json] [--junit FILE]\n\n"+
		"Combines the outputs of 'kanbanchaos gate --json --shard i/n' into the gate's verdict (every entry's seeds from\n"+
		"every shard; --junit writes it for CI), or those of 'kanbanchaos fuzz --json --shard i/n' (one file per shard; the last summary line of each\n"+
		"is read) into the campaign's summary: runs, failures by invariant, doublecheck divergence, probe coverage.\n"+
		"The shards must come from the same campaign (seed, runs, scenarios, variant, knobs) and must not overlap;\n"+
		"a missing shard leaves its runs undone, which makes the verdict at best unknown.\n\n"+
		"Example: kanbanchaos merge shard0.jsonl shard1.jsonl shard2.jsonl shard3.jsonl\n\n"+
		"Exit codes: 0 pass · 1 a run failed · 2 bad input · 3 unknown (undecided or missing runs) · 4 a shard had harness errors.\n\nFlags:\n", stderr)
	fs.BoolVar(&asJSON, "json", false, "print the merged summary as one JSON line")
	fs.StringVar(&junit, "junit", "", "gate shards: write the merged gate as JUnit XML (one test case gate/<entry>)")
	pos, code, ok := parseFlags(fs, args)
	if !ok {
		return code
	}
	if len(pos) == 0 {
		fmt.Fprintln(stderr, "kanbanchaos merge: want one or more shard outputs (files written by fuzz --json)")
		return exitUsage
	}
	if err := checkOutputs(nil, map[string]string{"junit": junit}); err != nil {
		fmt.Fprintln(stderr, "kanbanchaos merge:", err)
		return exitUsage
	}
	if g, ok, err := readGateShards(pos); ok || err != nil {
		if err != nil {
			fmt.Fprintln(stderr, "kanbanchaos merge:", err)
			return exitUsage
		}
		if !asJSON {
			fmt.Fprintf(stdout, "kanbanchaos merge  %d gate shard(s)  subject=%s  seeds 1–%d\n", len(pos), g.Subject, g.Seeds)
		}
		return reportGate(g, nil, asJSON, junit, 0, stdout, stderr)
	}
	if junit != "" {
		fmt.Fprintln(stderr, "kanbanchaos merge: --junit is for gate shards; a fuzz shard writes its own with fuzz --junit")
		return exitUsage
	}
	var parts []campaign.Summary
	for _, path := range pos {
		s, err := readSummary(path)
		if err != nil {
			fmt.Fprintln(stderr, "kanbanchaos merge:", err)
			return exitUsage
		}
		parts = append(parts, s)
	}
	m, err := campaign.Merge(parts)
	if err != nil {
		fmt.Fprintln(stderr, "kanbanchaos merge:", err)
		return exitUsage
	}
	if asJSON {
		writeDoc(stdout, "summary", m, false)
	} else {
		fmt.Fprintf(stdout, "kanbanchaos merge  %d shard(s): %v  seed=%d  runs=%d\n", len(parts), m.Merged, m.Seed, m.Runs)
		printSummary(stdout, m)
	}
	return exitFor(m.Verdict)
}

// readSummary returns the last summary line of a fuzz --json output.
func readSummary(path string) (campaign.Summary, error) {
	var found campaign.Summary
	data, err := readInput(path, maxShardBytes)
	if err != nil {
		return found, err
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 64<<20)
	ok := false
	for line := 1; sc.Scan(); line++ {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var probe struct {
			Type string `json:"type"`
		}
		// Every line of fuzz --json is a run or the summary: anything else
		// means the file is not what it should be, and is said, not skipped.
		if err := json.Unmarshal(sc.Bytes(), &probe); err != nil || (probe.Type != "run" && probe.Type != "summary") {
			return found, fmt.Errorf("%w: %s line %d is not a line of 'kanbanchaos fuzz --json' output: %.80q", errInput, path, line, sc.Text())
		}
		if probe.Type != "summary" {
			continue
		}
		var s campaign.Summary
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			return found, fmt.Errorf("%s: a summary line that does not parse: %w", path, err)
		}
		found, ok = s, true
	}
	if err := sc.Err(); err != nil {
		return found, fmt.Errorf("%s: %w", path, err)
	}
	if !ok {
		return found, fmt.Errorf("%s has no summary line: it is not the output of 'kanbanchaos fuzz --json' (or the campaign did not finish)", path)
	}
	return found, nil
}

// readGateShards reads the outputs of 'gate --json --shard i/n' and merges
// them: the seeds of each entry from every shard, summed again. ok is false
// when the files are not gate outputs (fuzz shards, then). Shards of
// different subjects or seed counts, or overlapping ones, are refused; a
// missing shard leaves its seeds out, which the seed counts show.
func readGateShards(paths []string) (merged gateRun, ok bool, err error) {
	seeds := map[string][]gate.Seed{}
	entries := map[string]gate.Entry{}
	var order []string
	for i, path := range paths {
		data, err := readInput(path, maxShardBytes)
		if err != nil {
			return merged, true, err
		}
		var g gateRun
		if json.Unmarshal(data, &g) != nil || g.Type != "gate" {
			if i > 0 {
				return merged, true, fmt.Errorf("%s is not the output of 'kanbanchaos gate --json', unlike %s", path, paths[0])
			}
			return merged, false, nil
		}
		if i == 0 {
			merged = gateRun{Type: "gate", Subject: g.Subject, Seeds: g.Seeds, Shard: "merged"}
		} else if g.Subject != merged.Subject || g.Seeds != merged.Seeds {
			return merged, true, fmt.Errorf("%s is a gate of %s over %d seed(s), %s one of %s over %d", path, g.Subject, g.Seeds, paths[0], merged.Subject, merged.Seeds)
		}
		for _, r := range g.Entries {
			if _, seen := entries[r.Name]; !seen {
				entries[r.Name] = r.Entry
				order = append(order, r.Name)
			}
			for _, sd := range r.Seeds {
				if slices.ContainsFunc(seeds[r.Name], func(x gate.Seed) bool { return x.Seed == sd.Seed }) {
					return merged, true, fmt.Errorf("%s: %s seed %d is in two shards: the shards overlap", path, r.Name, sd.Seed)
				}
				seeds[r.Name] = append(seeds[r.Name], sd)
			}
		}
	}
	// The gate's own entry order, whatever order the shards came in.
	slices.SortStableFunc(order, func(a, b string) int {
		return slices.Index(gate.Names(), a) - slices.Index(gate.Names(), b)
	})
	for _, name := range order {
		ss := seeds[name]
		slices.SortFunc(ss, func(a, b gate.Seed) int { return int(a.Seed) - int(b.Seed) })
		merged.Entries = append(merged.Entries, gate.Result{Entry: entries[name], Seeds: ss, Status: gate.Sum(ss)})
	}
	return merged, true, nil
}
