"""go-redis v9 client instrumentation (github.com/redis/go-redis/v9)."""
