"""The settlement actor: aggregates receivable and settlement flows per period.

Not built yet: its issue (receivables and settlement per period) adds the flows table, the
actor that tails it, snapshots and statements. Nothing imports this module today.
"""
