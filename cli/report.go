package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/kanbanchaos/kanbanchaos/campaign"
	"github.com/kanbanchaos/kanbanchaos/report"
)

func cmdReport(args []string, stdout, stderr io.Writer) int {
	var out string
	fs := newFlagSet("report", "Usage: kanbanchaos report DIR [--out FILE]\n\n"+
		"Writes one self-contained HTML file (inline SVG and CSS; no script, no font, nothing from the network)\n"+
		"and prints its path. DIR is either\n"+
		"  - a run's artifact directory (kept by run/replay for a failing run, or with --keep): per task a timeline\n"+
		"    of worker starts (ledger), crashes, breaker trips (gave_up), promotions, completions and the failure\n"+
		"    counter against its limit, with the quiet phase and injected faults shaded and every violation listed\n"+
		"    with its evidence; or\n"+
		"  - a compare --artifacts directory: the side-by-side table and every seed, linked to its runs' reports.\n"+
		"It only reads DIR: the board is read from a copy, never opened for writing. 'run --report' and\n"+
		"'compare --report' write it for you.\n\n"+
		"Example: kanbanchaos report arts/issue-30896-7\n\nFlags:\n", stderr)
	fs.StringVar(&out, "out", "", "write the report to FILE (default: DIR/"+report.FileName+")")
	pos, code, ok := parseFlags(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return usageError(stderr, "report")("want exactly one directory (a run's artifacts or a compare --artifacts DIR), got %d arguments", len(pos))
	}
	err := checkReportOut(pos[0], out)
	if err == nil {
		err = checkOutputs(nil, map[string]string{"out": out})
	}
	if err != nil {
		fmt.Fprintln(stderr, "kanbanchaos report:", err)
		return exitUsage
	}
	path, err := report.Write(pos[0], out)
	if errors.Is(err, report.ErrBadInput) {
		fmt.Fprintln(stderr, "kanbanchaos report:", err)
		return exitUsage
	}
	if err != nil {
		fmt.Fprintln(stderr, "kanbanchaos report: internal error:", err)
		return exitInternal
	}
	fmt.Fprintln(stdout, path)
	return exitPass
}

// writeCampaignReport stores a campaign's summary in its artifacts directory
// (a new temp dir if the campaign kept nothing), renders it and each kept
// run, and returns the report's path.
func writeCampaignReport(sum *campaign.Summary) (string, error) {
	if sum.Artifacts == "" {
		dir, err := os.MkdirTemp("", fmt.Sprintf("kanbanchaos-fuzz-%d-", sum.Seed))
		if err != nil {
			return "", err
		}
		sum.Artifacts = dir
	}
	data, err := json.MarshalIndent(sum, "", "  ")
	if err != nil {
		return "", fmt.Errorf("encode summary: %w", err)
	}
	if err := os.WriteFile(filepath.Join(sum.Artifacts, report.CampaignFile), append(data, '\n'), 0o644); err != nil {
		return "", err
	}
	runs, _ := filepath.Glob(filepath.Join(sum.Artifacts, "runs", "*", "verdict.json"))
	for _, v := range runs {
		if _, err := report.Write(filepath.Dir(v), ""); err != nil {
			return "", err
		}
	}
	return report.Write(sum.Artifacts, "")
}
