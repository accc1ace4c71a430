//! Triggers (being written).
