"""Integration workflows: webhooks, importers, exporters, sync connectors, backup and restore.

Each is a job kind over the same ledger (see docs/architecture.md). None is built yet.
"""
