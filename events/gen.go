package events

// events.pb.go is generated from events.proto and committed; gen.sh says
// which protoc and protoc-gen-go versions to use.
//go:generate sh gen.sh
