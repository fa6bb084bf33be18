#!/usr/bin/env bash
# Builds the real helm CLI from source with `go install` (Go module proxy) into .cache/bin, once,
# and prints its path. Later runs reuse the binary when it was built from the pinned version.
#
#   scripts/helm.sh            build if needed, print the path of the helm binary
#
# Environment: HELM_VERSION (pinned below; the release's go.mod must not ask for a newer Go than
# the one installed), GO (go on the PATH, else /usr/local/go/bin/go).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HELM_VERSION=${HELM_VERSION:-v3.22.0}
BIN_DIR="$ROOT/.cache/bin"
HELM="$BIN_DIR/helm"
STAMP="$BIN_DIR/helm.version"

log() { echo "[helm] $*" >&2; }

if [ -x "$HELM" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$HELM_VERSION" ]; then
  echo "$HELM"
  exit 0
fi

GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
[ -x "$GO" ] || { log "Go is required to build helm (looked for $GO)"; exit 1; }

log "building helm $HELM_VERSION with $("$GO" version) into $BIN_DIR (first time takes minutes)"
mkdir -p "$BIN_DIR"
# Release builds stamp the version with -X; without it `helm version` would only say the minor.
GOBIN="$BIN_DIR" "$GO" install \
  -ldflags "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
  "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
echo "$HELM_VERSION" >"$STAMP"
log "built $("$HELM" version --short)"
echo "$HELM"
