package campaign

// The plan of a campaign: which runs (shards of the run indices, a seed
// per run), which schedule each draws, which are doublechecked, and the
// command that replays one.

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/kanbanchaos/kanbanchaos/scenarios"
	"github.com/kanbanchaos/kanbanchaos/schedule"
)

// Shard is part i of n of a campaign's run indices (n = 0 or 1: all).
type Shard struct{ Index, Count int }

// ParseShard reads "i/n" with 0 ≤ i < n.
func ParseShard(s string) (Shard, error) {
	a, b, ok := strings.Cut(s, "/")
	i, err1 := strconv.Atoi(a)
	n, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || n < 1 || i < 0 || i >= n {
		return Shard{}, fmt.Errorf("shard %q is not i/n with 0 <= i < n (e.g. 0/4 … 3/4)", s)
	}
	return Shard{Index: i, Count: n}, nil
}

func (s Shard) String() string {
	if s.Count <= 1 {
		return "0/1"
	}
	return fmt.Sprintf("%d/%d", s.Index, s.Count)
}

// Indices are the run indices of shard s of a campaign of runs runs: a
// contiguous block, so each shard still rotates through every scenario.
// The shards 0/n … n-1/n partition 0 … runs-1.
func (s Shard) Indices(runs int) []int {
	n := max(s.Count, 1)
	lo, hi := s.Index*runs/n, (s.Index+1)*runs/n
	out := make([]int, 0, hi-lo)
	for i := lo; i < hi; i++ {
		out = append(out, i)
	}
	return out
}

// RunSeed is the seed of run index of the campaign with seed campaign:
// splitmix64 of both, cut to 32 bits so people can type it.
func RunSeed(campaign uint64, index int) uint64 {
	z := campaign + uint64(index+1)*0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return (z ^ (z >> 31)) >> 32
}

// Planned is one run of the plan.
type Planned struct {
	Index    int    `json:"index"`
	Seed     uint64 `json:"seed"`
	Scenario string `json:"scenario"`
}

// Plan lists this shard's runs in order.
func (c *Campaign) Plan() []Planned {
	if len(c.RunSeeds) > 0 {
		var out []Planned
		for i, seed := range c.RunSeeds {
			out = append(out, Planned{Index: i, Seed: seed, Scenario: c.Swarms[i%len(c.Swarms)].Scenario().Name})
		}
		return out
	}
	var out []Planned
	for _, i := range c.Shard.Indices(c.Runs) {
		out = append(out, Planned{Index: i, Seed: RunSeed(c.Seed, i), Scenario: c.Swarms[i%len(c.Swarms)].Scenario().Name})
	}
	return out
}

// swarm is the swarm of a planned run.
func (c *Campaign) swarm(p Planned) scenarios.Swarm {
	return c.Swarms[p.Index%len(c.Swarms)]
}

// Schedule is the schedule of a planned run: its swarm's draw for its seed,
// the campaign's variant and knobs.
func (c *Campaign) Schedule(p Planned) (schedule.Schedule, scenarios.Params) {
	w := c.swarm(p)
	params := w.Draw(p.Seed)
	return c.build(w, params, p.Seed), params
}

func (c *Campaign) build(w scenarios.Swarm, params scenarios.Params, seed uint64) schedule.Schedule {
	s := w.Schedule(params, seed, c.Variant)
	for k, v := range c.Knobs {
		if s.Knobs == nil {
			s.Knobs = map[string]string{}
		}
		s.Knobs[k] = v
	}
	return s
}

// Replay is the command that runs planned run p again, alone.
func (c *Campaign) Replay(p Planned, variant string) string {
	cmd := fmt.Sprintf("%s fuzz --scenario %s --variant %s --run-seed %d", c.Command, p.Scenario, variant, p.Seed)
	if c.ReplayFlags != "" {
		cmd += " " + c.ReplayFlags
	}
	return cmd
}

// doublechecked reports whether run p is replayed once more.
func (c *Campaign) doublechecked(p Planned) bool { return c.sample[p.Index] }

// doublecheckSample picks Doublecheck percent of the whole campaign's runs,
// rounded up (10% of 20 runs replays 2): the indices whose hash of index
// and campaign seed is smallest, so the same runs are replayed however the
// campaign is sharded.
func (c *Campaign) doublecheckSample() map[int]bool {
	n := c.Runs
	if len(c.RunSeeds) > 0 {
		n = len(c.RunSeeds)
	}
	k := min(n, int(math.Ceil(c.Doublecheck*float64(n)/100-1e-9)))
	if c.Doublecheck <= 0 || k <= 0 {
		return nil
	}
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	hash := func(i int) uint64 { return RunSeed(c.Seed^0xd0b1ec4ec4, i) }
	slices.SortFunc(idx, func(a, b int) int { return cmp.Compare(hash(a), hash(b)) })
	out := make(map[int]bool, k)
	for _, i := range idx[:k] {
		out[i] = true
	}
	return out
}
