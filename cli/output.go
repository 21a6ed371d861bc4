package cli

import (
	"bytes"
	"encoding/json"
	"io"
	"math"
	"strings"
	"time"

	"github.com/kanbanchaos/kanbanchaos/buildinfo"
)

// Every JSON document the CLI prints goes through writeDoc, so all share
// one shape (docs/kanbanchaos.schema.json): schema_version and the binary
// that made it (kanbanchaos) at the top, and one unit per kind — durations
// and clock readings in milliseconds (keys ending in _ms), points in time
// as RFC 3339 strings (keys ending in _at), rates per second (_per_s).
// The packages below keep the units that suit their work (time.Duration
// in nanoseconds, seconds as Hermes takes them, epoch seconds from
// SQLite); this is where they become the documented ones.

// unitRenames maps a key in another unit to its documented key and the
// factor that turns its value into milliseconds.
var unitRenames = map[string]struct {
	key    string
	factor float64
}{
	"elapsed_ns":            {"elapsed_ms", 1e-6},
	"start_mono_ns":         {"start_mono_ms", 1e-6},
	"mono_ns":               {"mono_ms", 1e-6},
	"crash_grace_s":         {"crash_grace_ms", 1e3},
	"claim_ttl_s":           {"claim_ttl_ms", 1e3},
	"rate_limit_cooldown_s": {"rate_limit_cooldown_ms", 1e3},
}

// wallKeys are epoch-second timestamps, printed as RFC 3339 under a new key.
var wallKeys = map[string]string{"start_wall": "started_at"}

// writeDoc prints v as one JSON document of the given type ("run",
// "check", "compare", "summary", "gate", …; v's own type field wins):
// indented (one object per command) or on one line (fuzz's and gate's
// streams, which merge reads back).
func writeDoc(w io.Writer, typ string, v any, indent bool) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return err
	}
	doc = normalize(doc)
	if obj, ok := doc.(map[string]any); ok {
		if _, ok := obj["type"]; !ok {
			obj["type"] = typ
		}
		obj["schema_version"] = schemaVersion
		obj["kanbanchaos"] = buildinfo.Read()
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	if indent {
		enc.SetIndent("", "  ")
	}
	return enc.Encode(doc)
}

// normalize rewrites the keys of unitRenames and wallKeys, at any depth.
func normalize(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, val := range x {
			if r, ok := unitRenames[k]; ok {
				if n, ok := val.(json.Number); ok {
					if f, err := n.Float64(); err == nil {
						out[r.key] = roundMs(f * r.factor)
						continue
					}
				}
			}
			if nk, ok := wallKeys[k]; ok {
				if n, ok := val.(json.Number); ok {
					if f, err := n.Float64(); err == nil && f > 0 {
						out[nk] = rfc3339(f)
						continue
					}
				}
			}
			out[k] = normalize(val)
		}
		return out
	case []any:
		for i := range x {
			x[i] = normalize(x[i])
		}
		return x
	}
	return v
}

// roundMs keeps milliseconds to the microsecond.
func roundMs(ms float64) float64 { return math.Round(ms*1000) / 1000 }

// rfc3339 is epoch seconds as an RFC 3339 UTC time with milliseconds.
func rfc3339(epoch float64) string {
	sec, frac := math.Modf(epoch)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

// isUnitKey reports whether key follows the documented units (for the
// schema test: no _ns, _s or _seconds key may be left).
func isUnitKey(key string) bool {
	if key == "spawns_per_s" {
		return true
	}
	return !strings.HasSuffix(key, "_ns") && !strings.HasSuffix(key, "_s") && !strings.HasSuffix(key, "_seconds")
}
