// A Toxiproxy-shaped TCP proxy, for bench/proxy.py --reference.
//
// Why: no real toxiproxy-server can be installed on the machines this toolkit targets, yet
// the fault server's targets are stated relative to one. This program forwards each
// direction the way Toxiproxy 2.x does with no toxic but its no-op stub: a goroutine reads
// the socket into 32 KiB chunks (each copied, as ChanWriter does) and sends them on a
// channel; a no-op "toxic" goroutine passes them to a second channel; a writer drains that
// into the other socket. It has no API, metrics or logging, so it costs at most what a
// real Toxiproxy costs: figures for it are an upper bound on real Toxiproxy's.
//
// Usage: reference -upstream HOST:PORT [-listen 127.0.0.1:0]; prints its address first.
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
)

const chunkSize = 32 * 1024

func forward(dst, src *net.TCPConn) {
	input := make(chan []byte)
	output := make(chan []byte)
	go func() { // the reader: io.Copy(ChanWriter, source)
		buf := make([]byte, chunkSize)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				chunk := make([]byte, n)
				copy(chunk, buf[:n])
				input <- chunk
			}
			if err != nil {
				close(input)
				return
			}
		}
	}()
	go func() { // the no-op toxic stub
		for chunk := range input {
			output <- chunk
		}
		close(output)
	}()
	for chunk := range output { // the writer: io.Copy(dest, ChanReader)
		if _, err := dst.Write(chunk); err != nil {
			for range output { // keep the chain draining so its goroutines end
			}
			break
		}
	}
	_ = dst.CloseWrite()
}

func serve(client *net.TCPConn, upstream string) {
	defer client.Close()
	conn, err := net.Dial("tcp", upstream)
	if err != nil {
		return
	}
	server := conn.(*net.TCPConn)
	defer server.Close()
	done := make(chan struct{})
	go func() { forward(server, client); close(done) }()
	forward(client, server)
	<-done
}

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	upstream := flag.String("upstream", "", "address to forward to (required)")
	flag.Parse()
	if *upstream == "" {
		fmt.Fprintln(os.Stderr, "error: -upstream HOST:PORT is required")
		os.Exit(2)
	}
	listener, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
	fmt.Println(listener.Addr().String())
	for {
		conn, err := listener.Accept()
		if err != nil {
			fmt.Fprintln(os.Stderr, "error:", err)
			os.Exit(1)
		}
		go serve(conn.(*net.TCPConn), *upstream)
	}
}
