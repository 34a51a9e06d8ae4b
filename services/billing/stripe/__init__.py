"""Billing's Stripe half: top-ups (PaymentIntents), subscriptions (Stripe Plans), verified and
idempotent webhooks, and reconciliation.

- ``client``: the official SDK behind one small gateway (async calls, dicts out, errors mapped).
- ``store``: the SQL of the Stripe tables (migration 0004).
- ``holds``: a billing hold on an account suspends its tree's keys (keys.v1 outbox, same transaction).
- ``topups``: a succeeded PaymentIntent → one ledger ``topup`` entry, whichever path saw it first.
- ``subscriptions``: Stripe's subscription state → our row and the account's hold.
- ``webhooks``: signature check, the event log (exactly once), the handlers; ``grpc``: the servicer.
- ``reconcile``: re-reads Stripe and repairs whatever a missed webhook left behind.

Stripe is the source of truth for payment state: every handler applies the object as Stripe holds
it now (re-retrieved), never the order events arrived in.
"""
