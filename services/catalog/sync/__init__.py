"""Sync: import provider model lists and public price feeds into the catalog, within sanity bounds.

``sources`` declares a feed (format, URL or file, matching rules); ``fetch`` reads it with a size cap
and strict JSON; ``formats`` turns each supported format into normalized ``FeedEntry`` rows or per-entry
errors, with no I/O; ``plan`` compares them with the catalog and decides, per model, apply / hold for
review / ignore (pure, so every rule is unit-tested); ``runner`` applies a plan in one transaction with
an audit record per change and schedules the configured sources.
"""
