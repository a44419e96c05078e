//go:build ignore

// queue peer: items sent from a producer goroutine to a consumer goroutine
// through a channel (run with GOMAXPROCS=1, as bench/run.sh does), in the
// shapes of bench/bench-queue.c. Prints ns per item, the median of 5 runs
// sized by calibration, in the format of bench/bench.h.
//
//	queue    channel of capacity 1024 (Go has no unbounded channel; the
//	         consumer is always waiting, so the capacity is never used) and
//	         runtime.Gosched() after every send, as loom's producer yields
//	queue1   unbuffered channel (a rendezvous: each send waits for its
//	         receiver), and a channel of capacity 1 (as maxsize 1)
//	queue64  channel of capacity 64
//
// The consumer checks that items come out in order.
package main

import (
	"loom/bench/peers/benchtime"
	"loom/bench/peers/handoff"
)

func main() {
	shapes := []struct {
		bench, impl string
		capacity    int
		gosched     bool
	}{
		{"queue", "go-chan+gosched", 1024, true},
		{"queue1", "go-unbuffered", 0, false},
		{"queue1", "go-chan(1)", 1, false},
		{"queue64", "go-chan(64)", 64, false},
	}
	for _, s := range shapes {
		med, min, n := benchtime.Measure(handoff.Run(s.capacity, s.gosched), 1)
		benchtime.Print(s.bench, s.impl, med, "ns/item", n, min, "")
	}
}
