"""Local infrastructure for development and tests: real PostgreSQL and real Kafka, no Docker.

`make dev`, `make test` and `make bench` all start their services through this
package, so what a developer runs is what the tests run.
"""
