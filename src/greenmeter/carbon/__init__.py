"""carbon."""
