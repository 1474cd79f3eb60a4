// Package shoppb is the generated gRPC code of shop.proto: the API between
// the reference shop's gateway and its services.
package shoppb

// Regenerate with protoc (apt: protobuf-compiler) and the generators
// `go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12` and
// `go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.5.1` on PATH.
//go:generate protoc --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative shop.proto
