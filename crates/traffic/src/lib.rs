//! Traffic between a function's revisions (skeleton; being written).
