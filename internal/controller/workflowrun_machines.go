package controller

import (
	"crypto/sha256"
	"fmt"
	"sync"
)

// machineCacheBytes bounds the pinned definitions whose parsed machines are kept: a parsed
// machine takes about 6 times its definition's size (about 25 MiB in all).
const machineCacheBytes = 4 << 20

// machineCache keeps the parsed machines of pinned definitions, by the definition's SHA-256: a
// run's definition is parsed once, not on every reconcile and task report (a 1 MB definition
// takes about 100 ms to parse). A parsed machine is never changed, so reconciles share it.
type machineCache struct {
	mu     sync.Mutex
	byHash map[[32]byte]*workflowMachine
	order  [][32]byte // oldest first
	sizes  map[[32]byte]int
	bytes  int
}

func (c *machineCache) parse(raw []byte) (*workflowMachine, error) {
	sum := sha256.Sum256(raw)
	c.mu.Lock()
	m, ok := c.byHash[sum]
	c.mu.Unlock()
	if ok {
		return m, nil
	}
	m, errs := parseWorkflow(raw)
	if len(errs) > 0 {
		return nil, fmt.Errorf("the pinned definition is invalid: %v", errs[0])
	}
	c.add(sum, m, len(raw))
	return m, nil
}

func (c *machineCache) add(sum [32]byte, m *workflowMachine, size int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byHash == nil {
		c.byHash, c.sizes = map[[32]byte]*workflowMachine{}, map[[32]byte]int{}
	}
	if _, ok := c.byHash[sum]; ok || size > machineCacheBytes {
		return
	}
	c.byHash[sum], c.sizes[sum] = m, size
	c.order = append(c.order, sum)
	c.bytes += size
	for c.bytes > machineCacheBytes {
		old := c.order[0]
		c.order = c.order[1:]
		c.bytes -= c.sizes[old]
		delete(c.byHash, old)
		delete(c.sizes, old)
	}
}
