//! Workspaces, progress and the pure state machine shared by both workflows.
