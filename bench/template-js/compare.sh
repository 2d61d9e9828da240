#!/usr/bin/env bash
# Renders the same workload with handlebars.js 4.7.7 (bench.js) and with flagstaff-template
# (examples/render_corpus.rs, release build), one after the other, and prints both and the
# ratio. Usage: bench/template-js/compare.sh [seconds=5]
set -euo pipefail

seconds="${1:-5}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

if [ ! -d "$here/node_modules/handlebars" ]; then
  (cd "$here" && npm ci --no-audit --no-fund >/dev/null)
fi
(cd "$root" && cargo build --release --quiet -p flagstaff-template --example render_corpus)
target_dir="${CARGO_TARGET_DIR:-$root/target}"

echo "== handlebars.js ($seconds s)"
js_out="$(node "$here/bench.js" "$seconds")"
echo "$js_out"
echo "== flagstaff-template ($seconds s)"
rs_out="$("$target_dir/release/examples/render_corpus" "$seconds")"
echo "$rs_out"

rate() { sed -n 's/.*renders_per_sec=\([0-9]*\).*/\1/p' <<<"$1"; }
bytes() { sed -n 's/.*bytes_per_pass=\([0-9]*\).*/\1/p' <<<"$1"; }
js_rate="$(rate "$js_out")"
rs_rate="$(rate "$rs_out")"
if [ "$(bytes "$js_out")" != "$(bytes "$rs_out")" ]; then
  echo "WARNING: the two renderers produced different output sizes per pass" >&2
fi
echo "== result"
echo "handlebars.js renders_per_sec=$js_rate"
echo "flagstaff-template renders_per_sec=$rs_rate"
awk -v r="$rs_rate" -v j="$js_rate" 'BEGIN { printf "ratio (flagstaff-template / handlebars.js) = %.2fx\n", r / j }'
