// The Go peers: each a program of its own (`go build queue.go` in this
// folder), sharing the timing loop of package benchtime. Standard library
// only.
module loom/bench/peers

go 1.18
