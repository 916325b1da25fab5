"""Text-only scoring shared by attribution and selection (no model, no gradients)."""
