//! Durable queues, topics and async invocations (skeleton; being written).
