#!/usr/bin/env bash
# Open an evaluation's report.html in headless Chromium: the rendered DOM must hold the results
# table and the three figures, and a full-page screenshot is written next to the report.
#   apt-get install -y chromium        (once; Debian's package)
#   scripts/check_report_in_chromium.sh RUN_DIR
set -euo pipefail
run_dir=$(realpath "${1:?usage: $0 RUN_DIR}")
page="file://$run_dir/report.html"
flags=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run
       --disable-background-networking --disable-component-update --disable-sync
       --user-data-dir="$(mktemp -d)")
dom=$(chromium "${flags[@]}" --dump-dom "$page" 2>/dev/null)
tables=$(grep -o "<table>" <<<"$dom" | wc -l)
images=$(grep -o '<img alt="[a-z_]*" src="data:image/png;base64,' <<<"$dom" | wc -l)
rows=$(grep -o "<tr>" <<<"$dom" | wc -l)
chromium "${flags[@]}" --window-size=1200,2400 --screenshot="$run_dir/report-screenshot.png" \
  "$page" >/dev/null 2>&1
echo "{\"tables\": $tables, \"table_rows\": $rows, \"images\": $images, \"screenshot\": \"$run_dir/report-screenshot.png\"}"
[ "$tables" -ge 2 ] && [ "$images" -eq 3 ] && [ "$rows" -ge 4 ]
