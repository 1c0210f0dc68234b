#!/bin/sh
# buf breaking against main (or BREAKING_AGAINST, a commit): build the image of that commit's
# proto/ in a temporary worktree and compare.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
top=$(git -C "$here" rev-parse --show-toplevel)
against=${BREAKING_AGAINST:-main}
if ! git -C "$top" cat-file -e "$against^{commit}" 2>/dev/null; then
  echo "buf breaking skipped: $against is not in this clone (a shallow one?)" >&2
  exit 0
fi
tmp=$(mktemp -d)
trap 'git -C "$top" worktree remove --force "$tmp/main" >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT
git -C "$top" worktree add --detach "$tmp/main" "$against" >/dev/null
files=$(cd "$tmp/main/proto" && find . -name '*.proto' | sort)
[ -n "$files" ] || { echo "no proto files on $against"; exit 0; }
(cd "$tmp/main/proto" && protoc --descriptor_set_in="$top/proto/protovalidate.binpb" -I. --include_imports -o"$tmp/against.binpb" $files)
cd "$here" && buf breaking image.binpb --against "$tmp/against.binpb" --config ../../proto/buf.yaml --path rdm
