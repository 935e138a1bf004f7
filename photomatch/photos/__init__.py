"""Photos of an event: ingest, the processing pipeline's bookkeeping, thumbnails, queueing."""
