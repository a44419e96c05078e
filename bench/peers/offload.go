//go:build ignore

// offload peer: a goroutine hand-off, the nearest Go has to running a
// function elsewhere and awaiting its result: start a goroutine that runs a
// no-op function and sends its result on a channel, then receive it, one at
// a time. Prints ns per round trip, the median of 5 runs sized by
// calibration, in the format of bench/bench.h. bench/run.sh runs it with
// GOMAXPROCS=1 like every Go peer (the hand-off then switches goroutines
// on one thread); GOMAXPROCS=2 lets it cross threads.
package main

import (
	"time"

	"loom/bench/peers/benchtime"
)

//go:noinline
func noop() int { return 0 }

func run(n int) time.Duration {
	ch := make(chan int)
	t0 := time.Now()
	for i := 0; i < n; i++ {
		go func() { ch <- noop() }()
		if <-ch != 0 {
			panic("noop")
		}
	}
	return time.Since(t0)
}

func main() {
	med, min, n := benchtime.Measure(run, 1)
	benchtime.Print("offload", "go-goroutine", med, "ns/job", n, min, "")
}
