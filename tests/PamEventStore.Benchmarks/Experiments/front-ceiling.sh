#!/usr/bin/env bash
# The front's ceiling (BENCHMARKS.md, "What the HTTP front leaves for the store"): the ingest phase run
# in alternated turns against five builds of the service, from a scratch clone with front-ceiling.patch
# applied (the patch is an experiment, never shipped; the clone is of what is committed):
#   real   the service as it is (group commit: decided on the remembered snapshot, guarded append in one round trip);
#   rows   the same front, and what an event-sourced upload writes (event row, stream version, snapshot,
#          batch index entry) in one round trip of plain SQL outside Marten, the session's state in memory;
#   rowsgroup  those rows for every session of a group commit in one round trip;
#   plain  the same front (token, binding, body, parse, compression, sealing), but each sealed batch
#          stored with one plain-table insert, as the baseline stores it;
#   nodb   the same front, every upload answered as stored without the database.
# Usage: tests/PamEventStore.Benchmarks/Experiments/front-ceiling.sh [rounds]   (default 3; ~2 minutes a round)
set -euo pipefail
rounds="${1:-3}"
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(git -C "$here" rev-parse --show-toplevel)"
scratch="$(mktemp -d /tmp/pamstore-front-ceiling-XXXXXX)"
trap 'rm -rf "$scratch"' EXIT
git clone -q "$repo" "$scratch/repo"
cd "$scratch/repo"
git apply "$here/front-ceiling.patch"
dotnet build -c Release tests/PamEventStore.Benchmarks >/dev/null
out="$repo/bench-results/front-ceiling.txt"
: > "$out"
for round in $(seq 1 "$rounds"); do
  for mode in real rowsgroup rows plain nodb; do
    line="$(dotnet run -c Release --no-build --project tests/PamEventStore.Benchmarks -- --only ingest \
      --service PAM_EXPERIMENT="$mode" --out "$scratch/$mode-$round.json" 2>&1 | grep -E 'cpu per upload|ingest:' | sed 's/^\[[0-9:]*\] //' | paste -sd ';' -)"
    ratio="$(python3 -c "import json,sys; f=[x for x in json.load(open(sys.argv[1]))['figures'] if x['key']=='ingest'][0]; print(f\"{f['ratio']:.2f}\")" "$scratch/$mode-$round.json")"
    echo "round $round $mode: ratio $ratio; $line" | tee -a "$out"
  done
done
echo "written to $out"
