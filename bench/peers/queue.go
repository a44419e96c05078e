//go:build ignore

// queue peer: items sent from a producer goroutine to a consumer goroutine
// through a channel (run with GOMAXPROCS=1, as bench/run.sh does), in the
// shapes of bench/bench-queue.c. Prints ns per item, the median of 5 runs
// sized by calibration, in the format of bench/bench.h.
//
//	queue    channel of capacity 1024 (Go has no unbounded channel; the
//	         consumer is always waiting, so the capacity is never used) and
//	         runtime.Gosched() after every send, as loom's producer yields
//	queue1   unbuffered channel (a rendezvous: each send waits for its
//	         receiver), and a channel of capacity 1 (as maxsize 1)
//	queue64  channel of capacity 64
//
// The consumer checks that items come out in order.
package main

import (
	"runtime"
	"time"

	"loom/bench/peers/benchtime"
)

func handoff(capacity int, gosched bool) func(int) time.Duration {
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
				if gosched {
					runtime.Gosched()
				}
			}
		}()
		<-done
		return time.Since(t0)
	}
}

func main() {
	shapes := []struct {
		bench, impl string
		capacity    int
		gosched     bool
	}{
		{"queue", "go-chan+gosched", 1024, true},
		{"queue1", "go-unbuffered", 0, false},
		{"queue1", "go-chan(1)", 1, false},
		{"queue64", "go-chan(64)", 64, false},
	}
	for _, s := range shapes {
		med, min, n := benchtime.Measure(handoff(s.capacity, s.gosched), 1)
		benchtime.Print(s.bench, s.impl, med, "ns/item", n, min, "")
	}
}
