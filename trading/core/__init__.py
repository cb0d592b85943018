"""The trade lifecycle, once, for live, paper, replay and backtests.

Pure code: no Django models, no database, no broker. It drives any `Ledger`
(`trading.core.ledger`): the ORM ledger of the live and paper path (`trading.orm_ledger`) and
the in-memory ledger of the event backtest (`analytics.backtest.memory_ledger`). See
docs/architecture.md for where each rule lives.
"""
