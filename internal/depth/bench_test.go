package depth_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/millrace-io/millrace/internal/depth"
)

// BenchmarkDepthCallsPerQueue measures the GetQueueAttributes calls that N readers of one queue
// cost over the same window: the shared monitor against the baseline of one poller per reader
// (what N KEDA ScaledObjects on one queue do). Reported as calls/s for both and their ratio.
func BenchmarkDepthCallsPerQueue(b *testing.B) {
	const window, interval = 2 * time.Second, 100 * time.Millisecond
	for _, readers := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("readers=%d", readers), func(b *testing.B) {
			url := newQueue(b, fmt.Sprintf("bench-%d", readers))
			var shared, naive float64
			for i := 0; i < b.N; i++ {
				shared += sharedCalls(b, url, readers, window, interval)
				naive += naiveCalls(url, readers, window, interval)
			}
			n := float64(b.N) * window.Seconds()
			b.ReportMetric(shared/n, "shared-calls/s")
			b.ReportMetric(naive/n, "baseline-calls/s")
			b.ReportMetric(shared/naive, "shared/baseline")
		})
	}
}

func sharedCalls(b *testing.B, url string, readers int, window, interval time.Duration) float64 {
	api := &countingAPI{api: sqsClient}
	m := start(b, api, interval)
	for r := 0; r < readers; r++ {
		m.Watch(url, fmt.Sprint(r), depth.Subscription{Interval: interval})
	}
	time.Sleep(window)
	for r := 0; r < readers; r++ {
		m.Unwatch(url, fmt.Sprint(r))
	}
	return float64(api.calls.Load())
}

func naiveCalls(url string, readers int, window, interval time.Duration) float64 {
	ctx, cancel := context.WithTimeout(context.Background(), window)
	defer cancel()
	var mu sync.Mutex
	calls := 0
	var wg sync.WaitGroup
	for r := 0; r < readers; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(interval)
			defer tick.Stop()
			for {
				_, _ = sqsClient.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
					QueueUrl:       aws.String(url),
					AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameApproximateNumberOfMessages},
				})
				mu.Lock()
				calls++
				mu.Unlock()
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
			}
		}()
	}
	wg.Wait()
	return float64(calls)
}
