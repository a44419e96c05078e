// hello.go: the Go net/http peer of bench/realload/run.sh. An HTTP/1.1
// "Hello, World!" server, as a Go user would write it; run with
// GOMAXPROCS=1 so that it uses one core, as the other servers do.
//
//	go run hello.go PORT    (0: a free port)
//
// Prints "serving on 127.0.0.1:PORT" once it accepts connections.
package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
)

func main() {
	port := "0"
	if len(os.Args) > 1 {
		port = os.Args[1]
	}
	ln, err := net.Listen("tcp", "127.0.0.1:"+port)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	body := []byte("Hello, World!")
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write(body)
	})
	fmt.Printf("serving on %s\n", ln.Addr())
	os.Stdout.Sync()
	if err := http.Serve(ln, h); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
