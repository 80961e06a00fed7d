"""kafka-go producer and consumer instrumentation (github.com/segmentio/kafka-go)."""
