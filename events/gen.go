package events

// Regenerate events.pb.go after editing events.proto (protoc 3.21+ and
// protoc-gen-go from google.golang.org/protobuf v1.36.6; the output is committed
// so building onair never needs protoc).
//go:generate protoc --go_out=. --go_opt=paths=source_relative events.proto
