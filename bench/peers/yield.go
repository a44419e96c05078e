//go:build ignore

// yield peer: two goroutines calling runtime.Gosched() in turn (run with
// GOMAXPROCS=1, as bench/run.sh does). Prints ns per Gosched, the median of
// 5 runs sized by calibration, in the format of bench/bench.h.
package main

import (
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"time"
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

// envNum reads a positive number from the environment (as bench/bench.h).
func envNum(name string, def float64) float64 {
	if v, err := strconv.ParseFloat(os.Getenv(name), 64); err == nil && v > 0 {
		return v
	}
	return def
}

func measure(f func(int) time.Duration, quantum int) (median, min float64, n int) {
	target := time.Duration(envNum("LOOM_BENCH_TARGET_S", 0.15) * float64(time.Second))
	reps := int(envNum("LOOM_BENCH_REPS", 5))
	n = 1024
	if quantum > n {
		n = quantum
	}
	var d time.Duration
	for {
		d = f(n)
		if d >= target/8 {
			break
		}
		n *= 2
	}
	n = int(float64(n) * float64(target) / float64(d))
	n = (n + quantum - 1) / quantum * quantum
	per := make([]float64, reps)
	for i := range per {
		per[i] = float64(f(n).Nanoseconds()) / float64(n)
	}
	sort.Float64s(per)
	return per[len(per)/2], per[0], n
}

func main() {
	med, min, n := measure(run, 2)
	fmt.Printf("%-6s %-18s %10.1f %-10s (median of %d runs of %d; min %.1f; GOMAXPROCS=%d, %s)\n",
		"yield", "go-gosched", med, "ns/yield", int(envNum("LOOM_BENCH_REPS", 5)), n, min, runtime.GOMAXPROCS(0), runtime.Version())
}
