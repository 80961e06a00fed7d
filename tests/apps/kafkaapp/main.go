// Kafka services for gotel's tests, one binary in two roles (kafka-go Writer and Reader).
//
// -role producer: a net/http service. POST /produce?topic=T&key=K&n=N with a value as its
// body writes N messages (one WriteMessages call, the request's context) to topic T: the
// value itself when N is 1, else "value#i". &per_message=1 names the topic in each message
// instead of the Writer; &create=1 creates the topic first; &compress=1 writes lz4-compressed
// batches; &traceparent=TP adds a traceparent header (as a producer's SDK would).
// /repeat?topic=T&n=N makes N single-message calls (bench). GET /consume?topic=T fetches the
// topic's next message (partition 0, from its first offset) with the request's context and
// prints its value: a consumer span with a parent in its own process; &n=N fetches N,
// &read=1 with ReadMessage, &wrap=M goes back to the first offset after every M messages
// (bench: a topic of M messages read over and over). Prints "listening on".
//
// -role consumer: reads topic -topic with ReadMessage (-read fetch: FetchMessage, then
// CommitMessages in a group), in consumer group -group if set, and prints one line per
// message: "consumed PARTITION OFFSET KEY VALUE". It creates the topic first.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
)

func main() {
	role := flag.String("role", "producer", "producer or consumer")
	addr := flag.String("addr", "127.0.0.1:0", "producer: HTTP listen address")
	broker := flag.String("broker", "127.0.0.1:9092", "Kafka bootstrap address")
	topic := flag.String("topic", "orders", "consumer: topic to read")
	group := flag.String("group", "", "consumer: consumer group (none: partition 0)")
	read := flag.String("read", "read", "consumer: read (ReadMessage) or fetch (FetchMessage)")
	flag.Parse()

	switch *role {
	case "producer":
		produce(*addr, *broker)
	case "consumer":
		consume(*broker, *topic, *group, *read)
	default:
		log.Fatalf("unknown role %q", *role)
	}
}

type writers struct {
	broker string
	mu     sync.Mutex
	byName map[string]*kafka.Writer
}

// The Writer of a topic ("" : one whose messages name their topic), compressing or not.
func (ws *writers) get(topic string, compress bool) *kafka.Writer {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	name := fmt.Sprintf("%s/%t", topic, compress)
	w, ok := ws.byName[name]
	if !ok {
		w = &kafka.Writer{
			Addr:         kafka.TCP(ws.broker),
			Topic:        topic,
			Balancer:     &kafka.LeastBytes{},
			BatchTimeout: time.Millisecond,
			RequiredAcks: kafka.RequireOne,
		}
		if compress {
			w.Compression = kafka.Lz4
		}
		ws.byName[name] = w
	}
	return w
}

func produce(addr, broker string) {
	ws := &writers{broker: broker, byName: map[string]*kafka.Writer{}}
	mux := http.NewServeMux()
	mux.HandleFunc("/produce", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		value, _ := io.ReadAll(r.Body)
		n, _ := strconv.Atoi(q.Get("n"))
		if n < 1 {
			n = 1
		}
		topic := q.Get("topic")
		if q.Get("create") == "1" {
			createTopic(ws.broker, topic)
		}
		compress := q.Get("compress") == "1"
		writer := ws.get(topic, compress)
		msgs := make([]kafka.Message, n)
		for i := range msgs {
			msgs[i] = kafka.Message{Key: []byte(q.Get("key")), Value: value}
			if n > 1 {
				msgs[i].Value = []byte(fmt.Sprintf("%s#%d", value, i))
			}
			if q.Get("per_message") == "1" {
				writer = ws.get("", compress)
				msgs[i].Topic = topic
			}
			if tp := q.Get("traceparent"); tp != "" {
				msgs[i].Headers = []kafka.Header{{Key: "app", Value: []byte("1")},
					{Key: "traceparent", Value: []byte(tp)}}
			}
		}
		if err := writer.WriteMessages(r.Context(), msgs...); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		fmt.Fprintf(w, "produced %d\n", n)
	})
	// n single-message calls: bench/kafka_overhead.py's slope between two n is one call's cost.
	mux.HandleFunc("/repeat", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		writer := ws.get(r.URL.Query().Get("topic"), false)
		for i := 0; i < n; i++ {
			msg := kafka.Message{Value: []byte(strconv.Itoa(i))}
			if err := writer.WriteMessages(r.Context(), msg); err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
		}
		fmt.Fprintf(w, "produced %d\n", n)
	})
	var mu sync.Mutex
	readers := map[string]*kafka.Reader{}
	fetched := map[string]int{}
	mux.HandleFunc("/consume", func(w http.ResponseWriter, r *http.Request) {
		topic := r.URL.Query().Get("topic")
		mu.Lock()
		reader, ok := readers[topic]
		if !ok {
			reader = kafka.NewReader(kafka.ReaderConfig{Brokers: []string{broker}, Topic: topic,
				MaxWait: 50 * time.Millisecond, MinBytes: 1, MaxBytes: 1 << 20})
			readers[topic] = reader
		}
		mu.Unlock()
		q := r.URL.Query()
		n, _ := strconv.Atoi(q.Get("n"))
		wrap, _ := strconv.Atoi(q.Get("wrap"))
		ctx, cancel := context.WithTimeout(r.Context(), 20*time.Second)
		defer cancel()
		for i := 0; i < max(n, 1); i++ {
			var m kafka.Message
			var err error
			if q.Get("read") == "1" {
				m, err = reader.ReadMessage(ctx)
			} else {
				m, err = reader.FetchMessage(ctx)
			}
			if err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
			mu.Lock()
			fetched[topic]++
			if wrap > 0 && fetched[topic]%wrap == 0 {
				err = reader.SetOffset(kafka.FirstOffset)
			}
			mu.Unlock()
			if err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
			if n <= 1 {
				fmt.Fprintf(w, "%s", m.Value)
			}
		}
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		log.Fatal(err)
	}
	// Tests read the port from this line.
	fmt.Printf("listening on %s\n", ln.Addr())
	log.Fatal(http.Serve(ln, mux))
}

// Create the topic (one partition), retrying while the broker starts.
func createTopic(broker, topic string) {
	client := &kafka.Client{Addr: kafka.TCP(broker), Timeout: 10 * time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for {
		res, err := client.CreateTopics(context.Background(), &kafka.CreateTopicsRequest{
			Topics: []kafka.TopicConfig{{Topic: topic, NumPartitions: 1, ReplicationFactor: 1}},
		})
		if err == nil {
			err = res.Errors[topic]
		}
		if err == nil || errors.Is(err, kafka.TopicAlreadyExists) {
			return
		}
		if time.Now().After(deadline) {
			log.Fatalf("create topic %s: %v", topic, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func consume(broker, topic, group, read string) {
	createTopic(broker, topic)
	config := kafka.ReaderConfig{
		Brokers:  []string{broker},
		Topic:    topic,
		GroupID:  group,
		MaxWait:  50 * time.Millisecond,
		MinBytes: 1,
		MaxBytes: 1 << 20,
	}
	if group != "" {
		config.StartOffset = kafka.FirstOffset
	}
	r := kafka.NewReader(config)
	defer r.Close()
	fmt.Println("consuming")
	ctx := context.Background()
	for {
		var m kafka.Message
		var err error
		if read == "fetch" {
			m, err = r.FetchMessage(ctx)
			if err == nil && group != "" {
				err = r.CommitMessages(ctx, m)
			}
		} else {
			m, err = r.ReadMessage(ctx)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "consumer:", err)
			os.Exit(1)
		}
		fmt.Printf("consumed %d %d %s %s\n", m.Partition, m.Offset, m.Key, m.Value)
	}
}
