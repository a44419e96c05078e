//go:build ignore

// scale peer: N goroutines (default 1,000,000) each sleeping 1 s, all alive
// at once (each waits for a start signal, closed after the last spawn,
// before it sleeps, as bench-scale's tasks wait for an event); prints the
// growth of peak RSS (getrusage ru_maxrss) over a baseline taken before
// spawning, per goroutine, and the times. Run with GOMAXPROCS=1 as
// bench/run.sh does.
//
//	go run scale.go [N [ms]]
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func maxrss() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Maxrss * 1024
}

func main() {
	n, ms := 1000000, 1000
	if len(os.Args) > 1 {
		n, _ = strconv.Atoi(os.Args[1])
	}
	if len(os.Args) > 2 {
		ms, _ = strconv.Atoi(os.Args[2])
	}
	var asleep, maxAsleep int64
	var wg sync.WaitGroup
	base := maxrss()
	t0 := time.Now()
	start := make(chan struct{})
	wg.Add(n)
	for i := 0; i < n; i++ {
		go func() {
			<-start
			a := atomic.AddInt64(&asleep, 1)
			if a > atomic.LoadInt64(&maxAsleep) {
				atomic.StoreInt64(&maxAsleep, a)
			}
			time.Sleep(time.Duration(ms) * time.Millisecond)
			atomic.AddInt64(&asleep, -1)
			wg.Done()
		}()
	}
	tSpawn := time.Since(t0)
	close(start)
	wg.Wait()
	total := time.Since(t0)
	peak := maxrss()
	fmt.Printf("%-6s %-18s %10.0f %-10s (peak RSS %.1f MiB over a %.1f MiB baseline, %d goroutines; GOMAXPROCS=%d, %s)\n",
		"scale", "go-goroutine", float64(peak-base)/float64(n), "B/task",
		float64(peak-base)/1048576, float64(base)/1048576, n, runtime.GOMAXPROCS(0), runtime.Version())
	fmt.Printf("%-6s %-18s %10.2f %-10s (spawn %.2f s, joined after %.2f s, %d ms sleeps; all %d alive at once, %d of them asleep at once)\n",
		"scale", "go-goroutine-time", total.Seconds(), "s", tSpawn.Seconds(), total.Seconds(), ms, n, maxAsleep)
}
