"""The orders API of seeds/003 over HTTP: bodies and queries into typed requests, views, the status table, handlers."""
