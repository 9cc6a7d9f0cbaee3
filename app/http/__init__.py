"""The HTTP API (Litestar). Nothing outside this package imports it."""
