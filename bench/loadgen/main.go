// Command loadgen sends TokenReviews to a webhook over keep-alive HTTPS connections and prints
// what it measured as one JSON object. It is the benchmarks' load generator where the load
// generator must not compete as a Python process for the cores it measures (bench/, issue 14).
//
// Usage:
//
//	loadgen -url https://127.0.0.1:PORT/authenticate -ca cert.pem -tokens FILE -c 16 [-n N]
//
// Tokens are read one per line from FILE (or stdin with "-"); each is sent once, in order,
// unless -n asks for more requests than there are tokens (then they repeat). Standard library
// only, so it builds without a module download.
package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

type result struct {
	Count       int            `json:"count"`
	Seconds     float64        `json:"seconds"`
	Statuses    map[string]int `json:"statuses"`
	Errors      int            `json:"errors"`
	P50Ms       float64        `json:"p50Ms"`
	P99Ms       float64        `json:"p99Ms"`
	MaxMs       float64        `json:"maxMs"`
	CPUSeconds  float64        `json:"cpuSeconds"`
	LatenciesMs []float64      `json:"latenciesMs,omitempty"`
}

func main() {
	url := flag.String("url", "", "the webhook's /authenticate URL")
	caFile := flag.String("ca", "", "PEM file of the CA to trust")
	tokensFile := flag.String("tokens", "-", "file with one token per line (- for stdin)")
	concurrency := flag.Int("c", 16, "concurrent connections")
	total := flag.Int("n", 0, "requests to send (default: one per token)")
	withLatencies := flag.Bool("latencies", false, "include every latency in the output")
	flag.Parse()
	if *url == "" || *caFile == "" || *concurrency < 1 {
		flag.Usage()
		os.Exit(2)
	}
	tokens, err := readTokens(*tokensFile)
	if err != nil || len(tokens) == 0 {
		fmt.Fprintf(os.Stderr, "loadgen: no tokens: %v\n", err)
		os.Exit(2)
	}
	if *total <= 0 {
		*total = len(tokens)
	}
	pem, err := os.ReadFile(*caFile)
	if err != nil {
		fmt.Fprintf(os.Stderr, "loadgen: %v\n", err)
		os.Exit(2)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		fmt.Fprintln(os.Stderr, "loadgen: no certificate in", *caFile)
		os.Exit(2)
	}
	transport := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"},
		MaxIdleConns:        *concurrency,
		MaxIdleConnsPerHost: *concurrency,
		MaxConnsPerHost:     *concurrency,
		IdleConnTimeout:     90 * time.Second,
	}
	client := &http.Client{Transport: transport, Timeout: 60 * time.Second}

	bodies := make([][]byte, len(tokens))
	for i, token := range tokens {
		bodies[i], _ = json.Marshal(map[string]any{
			"apiVersion": "authentication.k8s.io/v1",
			"kind":       "TokenReview",
			"spec":       map[string]string{"token": token},
		})
	}
	latencies := make([]float64, *total)
	statuses := make([]int, *total)
	var next int64 = -1
	var failures int64
	var wg sync.WaitGroup
	cpuBefore := cpuSeconds()
	started := time.Now()
	for w := 0; w < *concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(atomic.AddInt64(&next, 1))
				if i >= *total {
					return
				}
				sent := time.Now()
				answer, err := client.Post(*url, "application/json", bytes.NewReader(bodies[i%len(bodies)]))
				if err != nil {
					atomic.AddInt64(&failures, 1)
					statuses[i] = -1
				} else {
					io.Copy(io.Discard, answer.Body)
					answer.Body.Close()
					statuses[i] = answer.StatusCode
				}
				latencies[i] = float64(time.Since(sent).Microseconds()) / 1000
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(started).Seconds()
	out := result{Count: *total, Seconds: elapsed, Statuses: map[string]int{}, Errors: int(failures)}
	out.CPUSeconds = cpuSeconds() - cpuBefore
	for _, s := range statuses {
		out.Statuses[fmt.Sprint(s)]++
	}
	sorted := append([]float64(nil), latencies...)
	sort.Float64s(sorted)
	out.P50Ms = percentile(sorted, 50)
	out.P99Ms = percentile(sorted, 99)
	out.MaxMs = sorted[len(sorted)-1]
	if *withLatencies {
		out.LatenciesMs = latencies
	}
	json.NewEncoder(os.Stdout).Encode(out)
}

func readTokens(path string) ([]string, error) {
	var in io.Reader = os.Stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		in = f
	}
	var tokens []string
	scanner := bufio.NewScanner(in)
	scanner.Buffer(make([]byte, 64*1024), 64*1024)
	for scanner.Scan() {
		if line := bytes.TrimSpace(scanner.Bytes()); len(line) > 0 {
			tokens = append(tokens, string(line))
		}
	}
	return tokens, scanner.Err()
}

// percentile of sorted values, nearest rank (as bench_server.pct).
func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(p/100*float64(len(sorted)) + 0.5)
	if rank < 1 {
		rank = 1
	}
	if rank > len(sorted) {
		rank = len(sorted)
	}
	return sorted[rank-1]
}
