// Command etcd is etcd's own server (go.etcd.io/etcd/server/v3/etcdmain), built as a
// command of this module because etcd's root module, which holds its main package, cannot
// be required from another module (it replaces its own submodules with local paths).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
