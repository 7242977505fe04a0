// Command ordersvc sends one record of each kind to the local Ferry agent.
//
//	go run . [TARGET]          # one Send: gauge, counter, delta, histogram, event, log
//	go run . -stream [TARGET]  # the same records over SendStream, one message per kind
//
// TARGET: unix:///run/ferry/agent.sock (default) or 127.0.0.1:4771.
// FERRY_LOCAL_TOKEN: the agent's local token, when it has a local_token_file (unset: none).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	ferryv1 "example.com/ordersvc/gen/ferry/v1"
)

func records(now time.Time) *ferryv1.Records {
	labels := map[string]string{"route": "/pay", "method": "POST"}
	return &ferryv1.Records{
		Metrics: []*ferryv1.MetricRecord{
			// GAUGE: a value at an instant. TimeUnixMs 0: the agent stamps it on receipt.
			{Name: "app.queue.depth", Kind: ferryv1.MetricKind_GAUGE, Value: 17,
				Labels: map[string]string{"queue": "orders"}},
			// COUNTER: the cumulative total since the process started (monotonic).
			{Name: "app.bytes.sent", Kind: ferryv1.MetricKind_COUNTER, Value: 1048576,
				Labels: labels, Unit: "By", TimeUnixMs: now.UnixMilli()},
			// DELTA: the increment since the last record of this series; the agent sums them.
			{Name: "app.http.requests", Kind: ferryv1.MetricKind_DELTA, Value: 50, Labels: labels},
		},
		Histograms: []*ferryv1.HistogramRecord{{
			// the observations of one interval, bucketed: 50 requests, 1.52 s in all
			Name:   "app.http.latency",
			Labels: labels,
			Unit:   "s",
			Bounds: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5},
			Counts: []uint64{0, 3, 11, 25, 9, 2, 0, 0, 0, 0, 0}, // len(Bounds)+1: the last is +Inf
			Sum:    1.52,
		}},
		Events: []*ferryv1.Event{{
			TimeUnixNs: now.UnixNano(),
			Type:       "purchase", Category: "shop", Action: "pay", Label: "basket",
			Value: 19.9, HasValue: true, // HasValue tells 0 from "no value"
			UserId: "u-1", SessionId: "s-1", Service: "checkout",
			Properties: map[string]string{"currency": "EUR", "items": "3"},
		}},
		Logs: []*ferryv1.LogRecord{{
			// TimeUnixNs 0: the agent stamps it on receipt
			Level: "error", Message: "payment declined", Service: "checkout",
			Attributes: map[string]string{"order": "o-17", "reason": "card_expired"},
			TraceId:    "4bf92f3577b34da6a3ce929d0e0e4736", SpanId: "00f067aa0ba902b7",
		}},
	}
}

// sendStream sends the records as several Records messages on one SendStream call.
func sendStream(ctx context.Context, client ferryv1.LocalClient, r *ferryv1.Records) (*ferryv1.SendResponse, error) {
	stream, err := client.SendStream(ctx)
	if err != nil {
		return nil, err
	}
	for _, part := range []*ferryv1.Records{
		{Metrics: r.Metrics}, {Histograms: r.Histograms}, {Events: r.Events}, {Logs: r.Logs},
	} {
		if err := stream.Send(part); err != nil {
			break // the agent ended the call: CloseAndRecv returns its status
		}
	}
	return stream.CloseAndRecv()
}

func main() {
	stream := flag.Bool("stream", false, "use SendStream instead of Send")
	flag.Parse()
	target := "unix:///run/ferry/agent.sock"
	if flag.NArg() > 0 {
		target = flag.Arg(0)
	}

	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil { // a malformed target; NewClient does not connect
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	defer conn.Close()
	client := ferryv1.NewLocalClient(conn)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// every call carries the token, when there is one, as "authorization: Bearer <token>"
	if token := strings.TrimSpace(os.Getenv("FERRY_LOCAL_TOKEN")); token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	}
	var resp *ferryv1.SendResponse
	if *stream {
		resp, err = sendStream(ctx, client, records(time.Now()))
	} else {
		resp, err = client.Send(ctx, records(time.Now()))
	}
	if err != nil {
		st := status.Convert(err)
		fmt.Fprintf(os.Stderr, "%s: %s\n", st.Code(), st.Message())
		switch status.Code(err) {
		case codes.InvalidArgument:
			// a bad record (the message names its index): the whole request was refused and
			// sending it again fails the same way; fix the record, drop the request
		case codes.Unauthenticated:
			// no token, or not the agent's: set FERRY_LOCAL_TOKEN (a rotated token: read it again)
		case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted:
			// no agent (yet), too slow, or busy: keep the records and retry with backoff
		}
		os.Exit(1)
	}
	fmt.Printf("accepted %d\n", resp.GetAccepted())
}
