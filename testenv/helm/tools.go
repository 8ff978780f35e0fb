//go:build tools

// Package tools records the Helm command this module builds, so go mod tidy keeps its dependencies
// in go.sum.
package tools

import (
	_ "helm.sh/helm/v4/cmd/helm"
)
