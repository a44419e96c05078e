// Package benchtime is what the Go peers share: the timing loop of
// bench/bench.h (a run sized by calibration to last LOOM_BENCH_TARGET_S
// seconds, repeated LOOM_BENCH_REPS times, the median kept) and its result
// line, so that every peer measures and reports the same way as loom's own
// benchmarks.
package benchtime

import (
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"time"
)

// EnvNum reads a positive number from the environment (as bench/bench.h).
func EnvNum(name string, def float64) float64 {
	if v, err := strconv.ParseFloat(os.Getenv(name), 64); err == nil && v > 0 {
		return v
	}
	return def
}

// Reps is the number of timed runs (LOOM_BENCH_REPS, 5).
func Reps() int { return int(EnvNum("LOOM_BENCH_REPS", 5)) }

// Measure times f(n), which does n operations, n a multiple of quantum:
// doubling n from 1024 (or quantum) until a run takes an eighth of the
// target, scaling n to the target, then timing Reps runs. Returns the
// median and the minimum, in ns per operation, and n.
func Measure(f func(int) time.Duration, quantum int) (median, min float64, n int) {
	start := 1024
	if quantum > start {
		start = quantum
	}
	return MeasureFrom(f, quantum, start)
}

// MeasureFrom is Measure with calibration starting from n = start, for
// operations too slow to do 1024 of them first (a process spawned each).
func MeasureFrom(f func(int) time.Duration, quantum, start int) (median, min float64, n int) {
	target := time.Duration(EnvNum("LOOM_BENCH_TARGET_S", 0.15) * float64(time.Second))
	n = start
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
	per := make([]float64, Reps())
	for i := range per {
		per[i] = float64(f(n).Nanoseconds()) / float64(n)
	}
	sort.Float64s(per)
	return per[len(per)/2], per[0], n
}

// Print prints a result line in the format of bench/bench.h: BENCH IMPL
// MEDIAN UNIT, then how it was measured; extra ("; ...") goes after the
// minimum.
func Print(bench, impl string, median float64, unit string, n int, min float64, extra string) {
	fmt.Printf("%-6s %-18s %10.1f %-10s (median of %d runs of %d; min %.1f%s; GOMAXPROCS=%d, %s)\n",
		bench, impl, median, unit, Reps(), n, min, extra, runtime.GOMAXPROCS(0), runtime.Version())
}
