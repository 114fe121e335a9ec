// Go target: main.processItem is called N times; item i sleeps SLEEP_MS ms.
// main.tally, which returns nothing, is called once per item too.
// Deep recursion in grow() forces goroutine stack growth (stack copying),
// which is what makes uretprobes crash Go programs.
// `gowork hold`: lines on stdin drive calls that stay in flight: "hold"
// starts a goroutine inside main.hold, "release" lets every held call return;
// each is answered ("held N", "released N") once the calls are in or out.
package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"
)

//go:noinline
func hold(release chan struct{}, inside *sync.WaitGroup) int {
	inside.Done()
	<-release
	return 1
}

func holdMode() {
	release := make(chan struct{})
	var inside, returned sync.WaitGroup
	held := 0
	fmt.Println("ready")
	lines := bufio.NewScanner(os.Stdin)
	for lines.Scan() {
		switch lines.Text() {
		case "hold":
			inside.Add(1)
			returned.Add(1)
			go func(ch chan struct{}) {
				hold(ch, &inside)
				returned.Done()
			}(release)
			inside.Wait()
			held++
			fmt.Println("held", held)
		case "release":
			close(release)
			returned.Wait()
			fmt.Println("released", held)
			held = 0
			release = make(chan struct{})
		}
	}
}

//go:noinline
func grow(depth int) int {
	var pad [256]byte
	pad[depth%256] = byte(depth)
	if depth == 0 {
		return int(pad[0])
	}
	return grow(depth-1) + int(pad[depth%256])
}

//go:noinline
func processItem(id int, sleepMs int) int {
	if id%5 == 0 {
		grow(2000)
	}
	time.Sleep(time.Duration(sleepMs) * time.Millisecond)
	if id%2 == 0 {
		return id * 10
	}
	return -id
}

// Returns nothing: whatever RAX holds when it returns is not a result.
//
//go:noinline
func tally(sum *int, v int) {
	*sum += v
}

func main() {
	if os.Args[1] == "hold" {
		holdMode()
		return
	}
	n, _ := strconv.Atoi(os.Args[1])
	sleepMs, _ := strconv.Atoi(os.Args[2])
	done := make(chan int)
	total := 0
	for w := 0; w < 2; w++ {
		go func(w int) {
			sum := 0
			for i := w + 1; i <= n; i += 2 {
				tally(&sum, processItem(i, sleepMs))
			}
			done <- sum
		}(w)
	}
	total += <-done
	total += <-done
	fmt.Println("total", total)
}
