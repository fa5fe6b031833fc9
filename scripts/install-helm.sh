#!/usr/bin/env bash
# Build the pinned Helm CLI from the Go module proxy into a cache outside the
# repository, so the deploy tests (tests/deploy/) validate the chart with the real
# tool. Idempotent: a cached binary of the pinned version is reused.
#
#   scripts/install-helm.sh            # prints the path of the helm binary
#   KTF_CACHE_DIR=/some/dir scripts/install-helm.sh
#
# Needs Go (>= 1.24) and access to the Go module proxy. Exits non-zero with one
# clear line when helm cannot be had; the tests then fail saying so.
set -euo pipefail

HELM_VERSION="${KTF_HELM_VERSION:-v3.22.0}"
CACHE_DIR="${KTF_CACHE_DIR:-${HOME}/.cache/ktf}"
BIN_DIR="${CACHE_DIR}/bin"
HELM="${BIN_DIR}/helm"
STAMP="${BIN_DIR}/.helm-version"

if [[ -x "${HELM}" && -f "${STAMP}" && "$(cat "${STAMP}")" == "${HELM_VERSION}" ]]; then
    echo "${HELM}"
    exit 0
fi

if ! command -v go >/dev/null 2>&1; then
    for candidate in /usr/local/go/bin/go /usr/lib/go/bin/go; do
        if [[ -x "${candidate}" ]]; then
            PATH="$(dirname "${candidate}"):${PATH}"
            break
        fi
    done
fi
if ! command -v go >/dev/null 2>&1; then
    echo "install-helm: go is not installed; cannot build helm ${HELM_VERSION}" >&2
    exit 1
fi

mkdir -p "${BIN_DIR}"
# A private GOPATH/GOCACHE under the cache dir keeps the build away from the
# repository and lets a second run reuse downloaded modules.
export GOBIN="${BIN_DIR}"
export GOPATH="${CACHE_DIR}/gopath"
export GOCACHE="${CACHE_DIR}/gocache"
export GOFLAGS="-buildvcs=false -modcacherw"
export CGO_ENABLED=0

echo "install-helm: building helm ${HELM_VERSION} into ${BIN_DIR} (first run takes a few minutes)" >&2
if ! go install "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}" >&2; then
    echo "install-helm: 'go install helm.sh/helm/v3/cmd/helm@${HELM_VERSION}' failed" >&2
    exit 1
fi
"${HELM}" version --short >&2
echo "${HELM_VERSION}" >"${STAMP}"
echo "${HELM}"
