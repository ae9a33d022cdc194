#!/usr/bin/env bash
# Build helm once from the Go module proxy and print its path; later runs reuse the cache.
#   packaging/helm.sh            # build when missing, print the binary's path on stdout
# The binary lands in ${KUBEIAM_E2E_CACHE:-~/.cache/kubeiam/e2e}/helm-<version>/helm, beside
# the other binaries the end-to-end suite builds (tests/e2e/cluster/binaries.py). The directory
# appears only once the build finished, so an interrupted build leaves nothing half-done.
set -euo pipefail
# helm 3: the chart is apiVersion v2, which helm 3 and 4 both read; v3.21.4 is the release the
# issue names and the newest v3 the module proxy serves here.
HELM_VERSION=v3.21.4
cache="${KUBEIAM_E2E_CACHE:-$HOME/.cache/kubeiam/e2e}"
dir="$cache/helm-$HELM_VERSION"
if [ -x "$dir/helm" ]; then
    echo "$dir/helm"
    exit 0
fi
if ! command -v go >/dev/null; then
    echo "packaging/helm.sh: error: helm $HELM_VERSION is not cached in $dir and go is not on PATH" >&2
    echo "fix: install Go 1.25 or newer (it builds helm once from the Go module proxy)" >&2
    exit 2
fi
mkdir -p "$cache"
work=$(mktemp -d "$cache/.helm-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "helm: building $HELM_VERSION with go install (once; about 3 minutes on 2 cores)" >&2
started=$(date +%s)
GOBIN="$work/bin" GOFLAGS=-buildvcs=false CGO_ENABLED=0 go install -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
    "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
mkdir -p "$work/out"
mv "$work/bin/helm" "$work/out/helm"
printf '{"name": "helm", "version": "%s", "command": "go install helm.sh/helm/v3/cmd/helm@%s"}\n' \
    "$HELM_VERSION" "$HELM_VERSION" >"$work/out/build.json"
# Another build may have finished meanwhile: keep the first one.
mv -T "$work/out" "$dir" 2>/dev/null || true
echo "helm: built in $(( $(date +%s) - started )) s: $dir/helm" >&2
echo "$dir/helm"
