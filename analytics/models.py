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


class SweepRun(models.Model):
    grid = models.JSONField(default=dict)
    status = models.CharField(max_length=16, default="running")
    summary = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"sweep #{self.pk} {self.status}"
