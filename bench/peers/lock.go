//go:build ignore

// lock peer (run with GOMAXPROCS=1, as bench/run.sh does), in the shapes of
// bench/bench-lock.c. Prints the median of 5 runs sized by calibration, in
// the format of bench/bench.h.
//
//	lock     sync.Mutex Lock + Unlock, uncontended
//	sem      a channel of capacity 1 as a semaphore: send + receive
//	lock100  a channel of capacity 1 as a FIFO lock (send to acquire,
//	         receive to release) passed around 100 goroutines. A receive from
//	         the full channel moves the longest-waiting sender's value in and
//	         readies it, so every acquisition is a hand-off (checked: at
//	         least 99%; sysmon's preemption of the 10 ms time slice that
//	         such a chain of goroutines shares reorders the queue now and
//	         then, and a goroutine left behind finishes its last few
//	         iterations alone).
//	         sync.Mutex is not measured here: it lets the releasing goroutine
//	         take the lock straight back (barging) until a waiter has starved
//	         for 1 ms, so most acquisitions would not be hand-offs.
package main

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"loom/bench/peers/benchtime"
)

const ntasks = 100

var handoffShare float64 // of the last lock100 run

func runMutex(n int) time.Duration {
	var mu sync.Mutex
	t0 := time.Now()
	for i := 0; i < n; i++ {
		mu.Lock()
		mu.Unlock()
	}
	return time.Since(t0)
}

func runChanSem(n int) time.Duration {
	sem := make(chan struct{}, 1)
	t0 := time.Now()
	for i := 0; i < n; i++ {
		sem <- struct{}{}
		<-sem
	}
	return time.Since(t0)
}

func runHandoff(n int) time.Duration {
	each := (n + ntasks - 1) / ntasks
	lock := make(chan struct{}, 1)
	var count, handoffs int
	holder := -1
	var started int32
	var wg sync.WaitGroup
	wg.Add(ntasks)
	t0 := time.Now()
	lock <- struct{}{} // the main goroutine holds the lock
	for k := 0; k < ntasks; k++ {
		go func(id int) {
			atomic.AddInt32(&started, 1)
			for i := 0; i < each; i++ {
				lock <- struct{}{}
				count++
				if holder != id {
					handoffs++
				}
				holder = id
				<-lock
			}
			wg.Done()
		}(k)
	}
	// Let every goroutine queue on the lock before releasing it.
	for atomic.LoadInt32(&started) < ntasks {
		runtime.Gosched()
	}
	runtime.Gosched()
	<-lock
	wg.Wait()
	d := time.Since(t0)
	total := each * ntasks
	if count != total || float64(handoffs) < 0.99*float64(total) {
		panic(fmt.Sprintf("lock100: %d acquisitions, %d hand-offs, want %d", count, handoffs, total))
	}
	handoffShare = float64(handoffs) / float64(total)
	return time.Duration(float64(d) * float64(n) / float64(total))
}

func main() {
	for _, b := range []struct {
		bench, impl, unit string
		f                 func(int) time.Duration
		quantum           int
	}{
		{"lock", "go-mutex", "ns/pair", runMutex, 1},
		{"sem", "go-chan(1)", "ns/pair", runChanSem, 1},
		{"lock100", "go-chanlock", "ns/handoff", runHandoff, ntasks},
	} {
		med, min, n := benchtime.Measure(b.f, b.quantum)
		extra := ""
		if b.bench == "lock100" {
			extra = fmt.Sprintf("; %.2f%% hand-offs", 100*handoffShare)
		}
		benchtime.Print(b.bench, b.impl, med, b.unit, n, min, extra)
	}
}
