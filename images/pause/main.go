// Command pause is the process of a pod's sandbox container: the kubelet starts it first so the pod's
// network and IPC namespaces have an owner, and stops it last. It waits for SIGTERM or SIGINT and exits
// 0. It reaps no zombies: pods here do not share a PID namespace
// (shareProcessNamespace is off), so no orphan is ever re-parented to it.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	<-stop
}
