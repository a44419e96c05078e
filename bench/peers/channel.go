//go:build ignore

// channel peer: items sent from a producer goroutine to a consumer
// goroutine through a buffered channel, at GOMAXPROCS=2 (bench/channel.sh
// sets it), in the shapes of bench/bench-channel.c: capacity 1 and 128.
// Prints ns per item, the median of 5 runs sized by calibration, in the
// format of bench/bench.h. The consumer checks that items come out in
// order.
package main

import (
	"loom/bench/peers/benchtime"
	"loom/bench/peers/handoff"
)

func main() {
	shapes := []struct {
		bench, impl string
		capacity    int
	}{
		{"channel1", "go-chan(1)", 1},
		{"channel128", "go-chan(128)", 128},
	}
	for _, s := range shapes {
		med, min, n := benchtime.Measure(handoff.Run(s.capacity, false), 1)
		benchtime.Print(s.bench, s.impl, med, "ns/item", n, min, "")
	}
}
