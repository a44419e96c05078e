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
	"strconv"
	"sync"
	"time"

	"loom/bench/peers/benchtime"
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

func main() {
	k := 1
	if len(os.Args) > 1 {
		k, _ = strconv.Atoi(os.Args[1])
		if k < 1 {
			k = 1
		}
	}
	// Calibration starts from 8 rounds of k: a child costs about 1 ms.
	med, min, n := benchtime.MeasureFrom(func(n int) time.Duration { return run(n, k) }, k, 8*k)
	med, min = med/1000, min/1000 // microseconds per child
	impl := fmt.Sprintf("go-exec(k=%d)", k)
	benchtime.Print("sproc", impl, med, "us/child", n, min, "")
	fmt.Printf("#      %s: %.0f spawns/s\n", impl, 1e6/med)
}
