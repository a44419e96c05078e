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
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"time"
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
	med, min, n := measure(run, 1)
	fmt.Printf("%-6s %-18s %10.1f %-10s (median of %d runs of %d; min %.1f; GOMAXPROCS=%d, %s)\n",
		"offload", "go-goroutine", med, "ns/job", int(envNum("LOOM_BENCH_REPS", 5)), n, min, runtime.GOMAXPROCS(0), runtime.Version())
}
