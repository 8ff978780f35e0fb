// Command etcd is the etcd server, built from go.etcd.io/etcd/server/v3 at the version pinned in
// ../../go.mod, for the Kubernetes test control plane started by scripts/testenv.sh.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
