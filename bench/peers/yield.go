//go:build ignore

// yield peer: two goroutines calling runtime.Gosched() in turn (run with
// GOMAXPROCS=1, as bench/run.sh does). Prints ns per Gosched, the median of
// 5 runs sized by calibration, in the format of bench/bench.h.
package main

import (
	"runtime"
	"sync"
	"time"

	"loom/bench/peers/benchtime"
)

func run(n int) time.Duration {
	each := n / 2
	var wg sync.WaitGroup
	wg.Add(2)
	t0 := time.Now()
	for k := 0; k < 2; k++ {
		go func() {
			for i := 0; i < each; i++ {
				runtime.Gosched()
			}
			wg.Done()
		}()
	}
	wg.Wait()
	return time.Since(t0)
}

func main() {
	med, min, n := benchtime.Measure(run, 2)
	benchtime.Print("yield", "go-gosched", med, "ns/yield", n, min, "")
}
