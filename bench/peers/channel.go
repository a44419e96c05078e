//go:build ignore

// channel peer: items sent from a producer goroutine to a consumer
// goroutine through a buffered channel, at GOMAXPROCS=2 (bench/channel.sh
// sets it), in the shapes of bench/bench-channel.c: capacity 1 and 128.
// Prints ns per item, the median of 5 runs sized by calibration, in the
// format of bench/bench.h. The consumer checks that items come out in
// order.
package main

import (
	"time"

	"loom/bench/peers/benchtime"
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

func main() {
	shapes := []struct {
		bench, impl string
		capacity    int
	}{
		{"channel1", "go-chan(1)", 1},
		{"channel128", "go-chan(128)", 128},
	}
	for _, s := range shapes {
		med, min, n := benchtime.Measure(handoff(s.capacity), 1)
		benchtime.Print(s.bench, s.impl, med, "ns/item", n, min, "")
	}
}
