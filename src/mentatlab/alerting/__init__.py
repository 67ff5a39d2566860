"""Alerting: budgets and threshold rules evaluated through analytics, and their notifiers.

Reads spans only through ``mentatlab.analytics`` and keeps rules, alerts and the delivery
outbox in the control store. See docs/alerting.md.
"""
