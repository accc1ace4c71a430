//! Cron schedules (skeleton; being written).
