//go:build ignore

// spawn peer: batches of 1000 goroutines that return at once, awaited with
// a sync.WaitGroup (run with GOMAXPROCS=1, as bench/run.sh does). Prints ns
// per goroutine, the median of 5 runs sized by calibration.
package main

import (
	"sync"
	"time"

	"loom/bench/peers/benchtime"
)

const batch = 1000

func run(n int) time.Duration {
	var wg sync.WaitGroup
	t0 := time.Now()
	for done := 0; done < n; done += batch {
		wg.Add(batch)
		for i := 0; i < batch; i++ {
			go func() { wg.Done() }()
		}
		wg.Wait()
	}
	return time.Since(t0)
}

func main() {
	med, min, n := benchtime.Measure(run, batch)
	benchtime.Print("spawn", "go-goroutine", med, "ns/task", n, min, "")
}
