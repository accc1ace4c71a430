//! Secrets sealed at rest (skeleton; being written).
