//go:build ignore

// subprocess peer: spawn + wait of /bin/true with exec.Command, one child
// at a time or K at once (argument; run with GOMAXPROCS=1, as
// bench/subprocess/run.sh does). The streams are the parent's own, as in
// the loom and uvloop programs. Prints microseconds per child, the median
// of 5 runs sized by calibration.
package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"time"
)

func one() {
	cmd := exec.Command("/bin/true")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "subprocess.go:", err)
		os.Exit(1)
	}
}

func run(n, k int) time.Duration {
	var wg sync.WaitGroup
	t0 := time.Now()
	wg.Add(k)
	for i := 0; i < k; i++ {
		go func() {
			for j := 0; j < n/k; j++ {
				one()
			}
			wg.Done()
		}()
	}
	wg.Wait()
	return time.Since(t0)
}

func envNum(name string, def float64) float64 {
	if v, err := strconv.ParseFloat(os.Getenv(name), 64); err == nil && v > 0 {
		return v
	}
	return def
}

func main() {
	k := 1
	if len(os.Args) > 1 {
		k, _ = strconv.Atoi(os.Args[1])
		if k < 1 {
			k = 1
		}
	}
	target := time.Duration(envNum("LOOM_BENCH_TARGET_S", 0.15) * float64(time.Second))
	reps := int(envNum("LOOM_BENCH_REPS", 5))
	n := 8 * k
	var d time.Duration
	for {
		d = run(n, k)
		if d >= target/8 {
			break
		}
		n *= 2
	}
	n = int(float64(n) * float64(target) / float64(d))
	n = (n + k - 1) / k * k
	per := make([]float64, reps)
	for i := range per {
		per[i] = float64(run(n, k).Nanoseconds()) / float64(n) / 1000
	}
	sort.Float64s(per)
	med := per[len(per)/2]
	impl := fmt.Sprintf("go-exec(k=%d)", k)
	fmt.Printf("%-6s %-18s %10.1f %-10s (median of %d runs of %d; min %.1f; GOMAXPROCS=%d, %s)\n",
		"sproc", impl, med, "us/child", reps, n, per[0], runtime.GOMAXPROCS(0), runtime.Version())
	fmt.Printf("#      %s: %.0f spawns/s\n", impl, 1e6/med)
}
