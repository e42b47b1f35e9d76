// Command pause is the real-node tier's pod sandbox process: it holds the pod's namespaces
// and does nothing until it is told to stop. test/tools/ensure.mjs builds it statically.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	// As PID 1 of the pod it also reaps the children the other containers may leave behind.
	signal.Ignore(syscall.SIGCHLD)
	<-stop
}
