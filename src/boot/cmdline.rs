//! TODO(skeleton): filled in by the boot work.
