//go:build ignore

// The Go echo server of the echo benchmark: a goroutine per connection with
// a 64 KiB buffer, on one P (GOMAXPROCS=1).
//
//	go build -o echo-go echo.go && ./echo-go [PORT]   (0 or nothing: any free port)
//
// Listens on 127.0.0.1 and prints the port on the first line of stdout.
package main

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
)

func handle(c net.Conn) {
	defer c.Close()
	buf := make([]byte, 64*1024)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func main() {
	runtime.GOMAXPROCS(1)
	port := 0
	if len(os.Args) > 1 {
		port, _ = strconv.Atoi(os.Args[1])
	}
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		fmt.Fprintln(os.Stderr, "echo-go:", err)
		os.Exit(1)
	}
	fmt.Println(ln.Addr().(*net.TCPAddr).Port)
	for {
		c, err := ln.Accept()
		if err != nil {
			continue
		}
		go handle(c)
	}
}
