//go:build ignore

// channel peer: items sent from a producer goroutine to a consumer
// goroutine through a buffered channel, at GOMAXPROCS=2 (bench/channel.sh
// sets it), in the shapes of bench/bench-channel.c: capacity 1 and 128.
// Prints ns per item, the median of 5 runs sized by calibration, in the
// format of bench/bench.h. The consumer checks that items come out in
// order.
package main

import (
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"time"
)

func handoff(capacity int) func(int) time.Duration {
	return func(n int) time.Duration {
		ch := make(chan int, capacity)
		done := make(chan struct{})
		t0 := time.Now()
		go func() {
			for i := 1; i <= n; i++ {
				if v := <-ch; v != i {
					panic("items out of order")
				}
			}
			close(done)
		}()
		go func() {
			for i := 1; i <= n; i++ {
				ch <- i
			}
		}()
		<-done
		return time.Since(t0)
	}
}

// envNum reads a positive number from the environment (as bench/bench.h).
func envNum(name string, def float64) float64 {
	if v, err := strconv.ParseFloat(os.Getenv(name), 64); err == nil && v > 0 {
		return v
	}
	return def
}

func measure(f func(int) time.Duration) (median, min float64, n int) {
	target := time.Duration(envNum("LOOM_BENCH_TARGET_S", 0.15) * float64(time.Second))
	reps := int(envNum("LOOM_BENCH_REPS", 5))
	n = 1024
	var d time.Duration
	for {
		d = f(n)
		if d >= target/8 {
			break
		}
		n *= 2
	}
	n = int(float64(n) * float64(target) / float64(d))
	per := make([]float64, reps)
	for i := range per {
		per[i] = float64(f(n).Nanoseconds()) / float64(n)
	}
	sort.Float64s(per)
	return per[len(per)/2], per[0], n
}

func main() {
	shapes := []struct {
		bench, impl string
		capacity    int
	}{
		{"channel1", "go-chan(1)", 1},
		{"channel128", "go-chan(128)", 128},
	}
	for _, s := range shapes {
		med, min, n := measure(handoff(s.capacity))
		fmt.Printf("%-6s %-18s %10.1f %-10s (median of %d runs of %d; min %.1f; GOMAXPROCS=%d, %s)\n",
			s.bench, s.impl, med, "ns/item", int(envNum("LOOM_BENCH_REPS", 5)), n, min, runtime.GOMAXPROCS(0), runtime.Version())
	}
}
