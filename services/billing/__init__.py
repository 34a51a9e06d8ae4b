"""Billing: owns PostgreSQL accounts, keys (hashed), plans, budgets, the credit ledger and Stripe state.

Serves the management API backend; publishes keys.v1.
"""
