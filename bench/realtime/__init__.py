"""Realtime benchmark (issue 4): Depot's events subscription against a bare Channels consumer."""
