//! TODO(skeleton): filled in by the sys work.
