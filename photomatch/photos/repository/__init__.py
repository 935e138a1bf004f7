"""SQL of the photos domain, one module per table. Functions only flush; the caller's boundary commits."""
