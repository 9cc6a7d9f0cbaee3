"""The consumer: applies order events exactly once, using the processed-events table."""
