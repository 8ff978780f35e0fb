//go:build tools

// Package tools only names the command this module builds.
package tools

import _ "github.com/opentofu/opentofu/cmd/tofu"
