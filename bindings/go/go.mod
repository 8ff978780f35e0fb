module github.com/koru-delta/go-client

go 1.21
