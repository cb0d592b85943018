"""Stored results of backtests and parameter sweeps."""

from django.db import models


class BacktestRun(models.Model):
    name = models.CharField(max_length=128, blank=True, default="")
    params = models.JSONField(default=dict, blank=True)
    stats = models.JSONField(default=dict, blank=True)
    trades = models.JSONField(default=list, blank=True)
    sweep = models.ForeignKey(
        "SweepRun", null=True, blank=True, on_delete=models.CASCADE, related_name="runs"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name or f"backtest #{self.pk}"


class FannedOutRun(models.Model):
    """A run fanned out over the workers as a Celery chord: `running` until the chord's
    summary lands (then its status and `finished_at`)."""

    status = models.CharField(max_length=16, default="running")
    summary = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True
        ordering = ["-created_at"]


class SweepRun(FannedOutRun):
    grid = models.JSONField(default=dict)

    def __str__(self) -> str:
        return f"sweep #{self.pk} {self.status}"


class WalkForwardRun(FannedOutRun):
    """One walk-forward analysis: its plan, folds and candidates, then the report."""

    plan = models.JSONField(default=dict, help_text="grid, data, windows, objective")
    folds = models.JSONField(default=list, blank=True)
    candidates = models.JSONField(default=list, blank=True)

    def __str__(self) -> str:
        return f"walk-forward #{self.pk} {self.status}"


class DriftStatus(models.TextChoices):
    MATCHED = "matched", "Both traded"
    MISSED = "missed", "Simulation filled, live did not"
    LIVE_ONLY = "live_only", "Live traded, simulation did not"


class DriftEntry(models.Model):
    """A live or paper trade next to the simulated trade of the same signal (the backtester
    run on the recorded bars). Slippage is in basis points of the simulated price, positive
    when live did worse (paid more on the entry, received less on the exit)."""

    trade = models.OneToOneField(
        "trading.Trade", null=True, blank=True, on_delete=models.SET_NULL, related_name="drift"
    )
    symbol = models.CharField(max_length=16)
    execution_symbol = models.CharField(max_length=16)
    setup = models.CharField(max_length=32)
    signal_ts = models.DateTimeField(help_text="start of the bar whose close fired the setup")
    status = models.CharField(max_length=12, choices=DriftStatus.choices)
    live_qty = models.PositiveIntegerField(default=0)
    sim_qty = models.PositiveIntegerField(default=0)
    live_entry_ts = models.DateTimeField(null=True, blank=True)
    sim_entry_ts = models.DateTimeField(null=True, blank=True)
    live_entry_price = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)
    sim_entry_price = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)
    live_exit_ts = models.DateTimeField(null=True, blank=True)
    sim_exit_ts = models.DateTimeField(null=True, blank=True)
    live_exit_price = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)
    sim_exit_price = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)
    entry_slippage_bps = models.FloatField(null=True, blank=True)
    exit_slippage_bps = models.FloatField(null=True, blank=True)
    entry_delay_sec = models.FloatField(null=True, blank=True)
    exit_delay_sec = models.FloatField(null=True, blank=True)
    live_pnl = models.DecimalField(max_digits=16, decimal_places=4, null=True, blank=True)
    sim_pnl = models.DecimalField(max_digits=16, decimal_places=4, null=True, blank=True)
    live_exit_reason = models.CharField(max_length=32, blank=True, default="")
    sim_exit_reason = models.CharField(max_length=32, blank=True, default="")
    legs = models.JSONField(
        default=list, blank=True, help_text="exit legs side by side: reason, qty, sim/live ts+price"
    )
    modelled_cost_bps = models.FloatField(
        null=True, blank=True, help_text="adverse bps the cost model charges a market fill"
    )
    computed_at = models.DateTimeField()

    class Meta:
        ordering = ["-signal_ts", "setup"]
        constraints = [
            models.UniqueConstraint(
                fields=["symbol", "setup", "signal_ts"], name="drift_entry_signal_unique"
            )
        ]
        indexes = [models.Index(fields=["setup", "signal_ts"], name="drift_setup_ts")]

    def __str__(self) -> str:
        return f"{self.setup} {self.symbol} {self.signal_ts:%Y-%m-%d %H:%M} {self.status}"
