// Module pause is the sandbox ("pause") image's program: it holds a pod's namespaces open and does
// nothing else. scripts/images.sh builds it statically into ghcr.io/koru/pause (see ../README.md).
module github.com/korudelta/koru-delta-cloud/images/pause

go 1.22
