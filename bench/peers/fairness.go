//go:build ignore

// fairness peer: how late a timer and pipe readiness are seen while
// goroutines burning CPU call runtime.Gosched() between slices (run with
// GOMAXPROCS=1, as bench/run.sh does). The same workload as
// bench/bench-fairness.c: 4 goroutines x 2 ms of CPU between yields; the
// main goroutine sleeps 10 ms 50 times (lateness past 10 ms), then reads a
// pipe that a writer goroutine fills 10 ms after each read starts (time
// from the write to the read returning). Prints the median and the worst,
// in µs, in the format of bench/bench.h.
package main

import (
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"sync/atomic"
	"time"
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func report(what string, v []float64, tasks, burn int) {
	sort.Float64s(v)
	fmt.Printf("%-8s %-12s %10.0f %-15s (median of %d; %d goroutines x %d ms CPU between Gosched; GOMAXPROCS=%d, %s)\n",
		"fairness", "go-gosched", v[len(v)/2], "us-late-"+what, len(v), tasks, burn, runtime.GOMAXPROCS(0), runtime.Version())
	fmt.Printf("%-8s %-12s %10.0f %-15s (worst of %d)\n",
		"fairness", "go-gosched", v[len(v)-1], "us-worst-"+what, len(v))
}

func main() {
	tasks := envInt("LOOM_BENCH_FAIR_TASKS", 4)
	burn := envInt("LOOM_BENCH_FAIR_BURN_MS", 2)
	samples := envInt("LOOM_BENCH_FAIR_SAMPLES", 50)
	var stop atomic.Bool
	for i := 0; i < tasks; i++ {
		go func() {
			for !stop.Load() {
				end := time.Now().Add(time.Duration(burn) * time.Millisecond)
				for time.Now().Before(end) {
				}
				runtime.Gosched()
			}
		}()
	}
	time.Sleep(50 * time.Millisecond) // warm-up, as the C benchmark does

	timer := make([]float64, samples)
	for i := range timer {
		t0 := time.Now()
		time.Sleep(10 * time.Millisecond)
		timer[i] = float64(time.Since(t0).Microseconds()) - 10000
	}

	r, w, err := os.Pipe()
	if err != nil {
		fmt.Fprintln(os.Stderr, "fairness.go:", err)
		os.Exit(1)
	}
	written := make(chan time.Time, 1)
	go func() {
		for i := 0; i < samples; i++ {
			time.Sleep(10 * time.Millisecond)
			written <- time.Now()
			if _, err := w.Write([]byte{'x'}); err != nil {
				return
			}
		}
	}()
	read := make([]float64, samples)
	buf := make([]byte, 1)
	for i := range read {
		if _, err := r.Read(buf); err != nil {
			fmt.Fprintln(os.Stderr, "fairness.go:", err)
			os.Exit(1)
		}
		now := time.Now()
		read[i] = float64(now.Sub(<-written).Microseconds())
	}
	stop.Store(true)
	report("timer", timer, tasks, burn)
	report("read", read, tasks, burn)
}
