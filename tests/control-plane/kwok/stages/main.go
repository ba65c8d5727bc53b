// Command stages prints the Stage configuration kwok runs with: the node and pod lifecycles
// that kwok ships as its defaults (the ones kwokctl gives its clusters), read from kwok's own
// packages so they always match the kwok binary built beside it.
package main

import (
	"fmt"
	"strings"

	nodefast "sigs.k8s.io/kwok/kustomize/stage/node/fast"
	nodeheartbeat "sigs.k8s.io/kwok/kustomize/stage/node/heartbeat-with-lease"
	podfast "sigs.k8s.io/kwok/kustomize/stage/pod/fast"
)

func main() {
	stages := []string{
		nodefast.DefaultNodeInit,
		nodeheartbeat.DefaultNodeHeartbeatWithLease,
		podfast.DefaultPodReady,
		podfast.DefaultPodComplete,
		podfast.DefaultPodDelete,
	}
	for _, stage := range stages {
		fmt.Printf("---\n%s\n", strings.TrimSpace(stage))
	}
}
