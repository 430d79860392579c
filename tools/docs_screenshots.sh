#!/usr/bin/env bash
# Screenshots of the built documentation site, taken by headless Chromium with the network cut off
# (every host name resolves to nothing), so they show what a reader without internet access sees:
# the maths typeset by the site's own copy of MathJax, the gallery's pictures.
#
# Builds nothing: build the site first,
#     pip install ".[docs]" && python -m sphinx -W --keep-going -b html docs docs/_build/html
# then run
#     tools/docs_screenshots.sh [SITE_DIR [OUT_DIR]]     (defaults: docs/_build/html, docs/_build/screenshots)
# Needs Chromium (Debian: apt-get install chromium).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
site=$(cd "${1:-$root/docs/_build/html}" && pwd)
out=${2:-$root/docs/_build/screenshots}
mkdir -p "$out"

browser=""
for b in chromium chromium-browser google-chrome; do
    if command -v "$b" >/dev/null 2>&1; then browser=$b; break; fi
done
if [ -z "$browser" ]; then
    echo "docs_screenshots: no Chromium found (Debian: apt-get install chromium)" >&2
    exit 1
fi

# page (relative to the site), picture name, window size
pages=(
    "index.html                                   home               1280,1000"
    "user_guide/maths.html                        maths              1280,2200"
    "generated/fastbp.gradient.html               api_gradient       1280,1100"
    "generated/fastbp.distributed.fit.html        api_dask_fit       1280,2000"
    "auto_examples/plot_03_decision_boundary.html gallery_boundary   1280,2600"
)

profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
status=0
for entry in "${pages[@]}"; do
    read -r page name size <<<"$entry"
    if [ ! -f "$site/$page" ]; then
        echo "docs_screenshots: $site/$page is missing (build the site first)" >&2
        status=1
        continue
    fi
    # --virtual-time-budget lets MathJax finish typesetting before the picture is taken;
    # --no-sandbox because CI containers run as root
    "$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars \
        --user-data-dir="$profile" --host-resolver-rules="MAP * ~NOTFOUND" \
        --window-size="$size" --virtual-time-budget=15000 \
        --screenshot="$out/$name.png" "file://$site/$page" >/dev/null 2>&1 || status=1
    if [ -s "$out/$name.png" ]; then
        echo "$out/$name.png  <- $page"
    else
        echo "docs_screenshots: no picture of $page" >&2
        status=1
    fi
done
exit $status
