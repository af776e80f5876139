"""Reading images safely, transforming them, and finding datasets on disk."""
