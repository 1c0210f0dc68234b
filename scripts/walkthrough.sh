#!/usr/bin/env bash
# Runs the README's walkthrough as written, against a running `./rdm up` (the same RDM_DATA_DIR
# and port variables as it, if you set any): the setup and steps 1 to 6, then steps 1 to 3 again
# with VERSION=4.3.0-fails-verification, then step 7. The commands are read from the README, so
# what a newcomer copies is what runs. It stops at the first command that fails and exits non-zero.
#   scripts/walkthrough.sh
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in curl jq sha256sum; do
  command -v "$tool" >/dev/null || { echo "walkthrough: needs $tool" >&2; exit 2; }
done
gateway=http://127.0.0.1:${GATEWAY_HTTP_PORT:-8080}
[[ $(curl -s -o /dev/null -w '%{http_code}' "$gateway/readyz") == 200 ]] ||
  { echo "walkthrough: nothing ready at $gateway/readyz; start ./rdm up first" >&2; exit 2; }

# The walkthrough's ```sh blocks, one file each: 0 is the setup, 1 to 7 the numbered steps.
blocks=$(mktemp -d)
trap 'rm -rf "$blocks"' EXIT
awk -v dir="$blocks" '
  /^## Walkthrough/ { inside = 1; next }
  inside && /^## / { exit }
  inside && /^```sh$/ { file = sprintf("%s/%d.sh", dir, n++); next }
  inside && /^```$/ { file = ""; next }
  file != "" { print > file }
' README.md
[[ -f $blocks/7.sh && ! -e $blocks/8.sh ]] ||
  { echo "walkthrough: expected 8 sh blocks under the README's walkthrough heading" >&2; exit 2; }

step() {
  echo "== walkthrough: ${2:-step $1}"
  # shellcheck source=/dev/null
  source "$blocks/$1.sh"
}
step 0 setup
for n in 1 2 3 4 5; do step "$n"; done
# Step 6 ends by cutting the live stream short (`| head`), which curl reports as a failed write.
set +o pipefail
step 6
set -o pipefail
VERSION=4.3.0-fails-verification
for n in 1 2 3; do step "$n" "step $n again, version $VERSION"; done
step 7
echo "== walkthrough: done"
