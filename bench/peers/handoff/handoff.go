// Package handoff is the producer and consumer pair that the channel and
// queue peers (channel.go, queue.go) time: items 1..n sent from one
// goroutine to another through a channel, the consumer checking that they
// come out in order.
package handoff

import (
	"runtime"
	"time"
)

// Run returns f(n) for benchtime.Measure: the time to send n items through
// a channel of the given capacity, with runtime.Gosched() after every send
// when gosched is set.
func Run(capacity int, gosched bool) func(int) time.Duration {
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
