//! TODO(skeleton): filled in by the image work.
