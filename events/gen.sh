#!/bin/sh
# Regenerates events.pb.go from events.proto. The output is committed, so
# building onair never needs protoc; run this (or `go generate ./events`)
# after editing events.proto, then `go test ./events/...` (the golden test
# proves old records still decode).
#
# Needs protoc 3.21+ and protoc-gen-go v1.36.6:
#   go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.6
set -eu
cd "$(dirname "$0")"
PATH="$(go env GOPATH)/bin:$PATH" exec protoc --go_out=. --go_opt=paths=source_relative events.proto
