"""Operator-controlled risk state: per-symbol overrides and the trading state."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models


class SymbolOverride(models.Model):
    """Per-symbol values that win over `QTY_<SYM>`-style settings and the defaults."""

    symbol = models.CharField(max_length=16, unique=True)
    enabled = models.BooleanField(default=True, help_text="off: the symbol is never traded")
    qty = models.PositiveIntegerField(null=True, blank=True)
    stop_pct = models.DecimalField(max_digits=6, decimal_places=4, null=True, blank=True)
    tp_pct = models.DecimalField(max_digits=6, decimal_places=4, null=True, blank=True)
    trail_pct = models.DecimalField(max_digits=6, decimal_places=4, null=True, blank=True)
    trail_act_pct = models.DecimalField(max_digits=6, decimal_places=4, null=True, blank=True)
    window_start = models.TimeField(null=True, blank=True, help_text="America/New_York")
    window_end = models.TimeField(null=True, blank=True, help_text="America/New_York")
    max_notional_usd = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    # Costs and stop floor of this symbol (empty = the COST_* / RISK_MIN_STOP_* settings).
    spread_usd = models.DecimalField(max_digits=10, decimal_places=4, null=True, blank=True)
    slippage_usd = models.DecimalField(max_digits=10, decimal_places=4, null=True, blank=True)
    commission_per_share_usd = models.DecimalField(
        max_digits=10, decimal_places=6, null=True, blank=True
    )
    commission_per_order_usd = models.DecimalField(
        max_digits=10, decimal_places=2, null=True, blank=True
    )
    min_stop_atr = models.DecimalField(max_digits=6, decimal_places=3, null=True, blank=True)
    min_stop_ticks = models.PositiveIntegerField(null=True, blank=True)
    min_stop_spreads = models.DecimalField(max_digits=6, decimal_places=3, null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["symbol"]

    def __str__(self) -> str:
        return self.symbol

    def clean(self) -> None:
        self.symbol = (self.symbol or "").upper().strip()
        for name in ("stop_pct", "trail_pct"):
            value = getattr(self, name)
            if value is not None and not (0 < value < 1):
                raise ValidationError({name: "must be a fraction between 0 and 1 (0.01 = 1%)"})
        for name in ("tp_pct", "trail_act_pct"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValidationError({name: "must be positive (0.02 = 2%)"})
        if (self.window_start is None) != (self.window_end is None):
            raise ValidationError("set both window_start and window_end, or neither")
        if self.window_start and self.window_end and self.window_start >= self.window_end:
            raise ValidationError({"window_end": "must be after window_start"})
        if self.max_notional_usd is not None and self.max_notional_usd <= 0:
            raise ValidationError({"max_notional_usd": "must be positive"})
        for name in (
            "spread_usd",
            "slippage_usd",
            "commission_per_share_usd",
            "commission_per_order_usd",
            "min_stop_atr",
            "min_stop_spreads",
        ):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValidationError({name: "must be >= 0"})


class TradingMode(models.TextChoices):
    ACTIVE = "ACTIVE", "Active: entries allowed"
    REDUCING = "REDUCING", "Reducing: exits only"
    HALTED = "HALTED", "Halted: only cancels and flatten"


class TradingState(models.Model):
    """The current trading state of one account (one row per account)."""

    account = models.CharField(max_length=32, unique=True, default="default")
    state = models.CharField(max_length=10, choices=TradingMode.choices, default=TradingMode.ACTIVE)
    reason = models.CharField(max_length=255, blank=True, default="")
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    changed_at = models.DateTimeField(auto_now=True)
    # A halt that ends on its own (the daily loss limit's, at the next trading day's open):
    # when, and into which state. Empty for every other state change: an operator's halt
    # stays until an operator lifts it.
    resume_at = models.DateTimeField(null=True, blank=True)
    resume_state = models.CharField(
        max_length=10, choices=TradingMode.choices, blank=True, default=""
    )

    def __str__(self) -> str:
        return f"{self.account}: {self.state}"


class TradingStateChange(models.Model):
    """Audit trail: every change of the trading state, by whom (or which job) and why."""

    account = models.CharField(max_length=32, default="default")
    from_state = models.CharField(max_length=10, choices=TradingMode.choices)
    to_state = models.CharField(max_length=10, choices=TradingMode.choices)
    reason = models.CharField(max_length=255, blank=True, default="")
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor = models.CharField(max_length=64, blank=True, default="", help_text="job or user name")
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-at"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.from_state}->{self.to_state}"
