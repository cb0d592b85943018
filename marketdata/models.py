"""Market data as it arrives: per-second aggregates (ticks) and 1-minute bars.

Prices are floats here (indicator maths); money becomes Decimal at the broker boundary.
On TimescaleDB both tables are hypertables (see migration 0002); plain PostgreSQL gets
BRIN indexes on time.
"""

from django.db import models


class BarSource(models.TextChoices):
    STREAM = "stream", "Polygon stream"
    REPLAY = "replay", "Replay feed"
    REST_BACKFILL = "rest_backfill", "REST gap back-fill"
    FLATFILE = "polygon_flatfile", "Polygon flat file"
    IMPORT = "import", "CSV import"
    TRADIER = "tradier", "Tradier timesales"


class Tick(models.Model):
    """A per-second aggregate (Polygon `A` event) or trade-level print.

    The unique (symbol, ts, source) btree also serves "latest N of a symbol" (scanned
    backwards); a second (symbol, -ts) index only slowed every write."""

    symbol = models.CharField(max_length=32, help_text="ours (SPX, not I:SPX); options O: dropped")
    ts = models.DateTimeField(help_text="start of the aggregate window (UTC)")
    open = models.FloatField()
    high = models.FloatField()
    low = models.FloatField()
    close = models.FloatField()
    volume = models.FloatField(default=0)
    vwap = models.FloatField(null=True, blank=True)
    avg_trade_size = models.FloatField(null=True, blank=True, help_text="Polygon `z`")
    source = models.CharField(max_length=24, choices=BarSource.choices, default=BarSource.STREAM)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "ticks"
        constraints = [
            models.UniqueConstraint(
                fields=["symbol", "ts", "source"], name="ticks_symbol_ts_source"
            )
        ]

    def __str__(self) -> str:
        return f"{self.symbol} {self.ts:%Y-%m-%d %H:%M:%S} {self.close}"


class Bar(models.Model):
    """A 1-minute bar; `ts` is the bar's start (UTC)."""

    symbol = models.CharField(max_length=32, help_text="ours (SPX, not I:SPX); options O: dropped")
    ts = models.DateTimeField()
    open = models.FloatField()
    high = models.FloatField()
    low = models.FloatField()
    close = models.FloatField()
    volume = models.FloatField(default=0)
    vwap = models.FloatField(null=True, blank=True)
    trades = models.IntegerField(null=True, blank=True, help_text="trade count when known")
    source = models.CharField(max_length=24, choices=BarSource.choices, default=BarSource.STREAM)
    provisional = models.BooleanField(
        default=False,
        db_default=False,
        help_text="built from a minute with missing seconds; replaced by the REST minute bar",
    )

    class Meta:
        db_table = "bars_1m"
        constraints = [
            models.UniqueConstraint(fields=["symbol", "ts", "source"], name="bars_symbol_ts_source")
        ]

    def __str__(self) -> str:
        return f"{self.symbol} {self.ts:%Y-%m-%d %H:%M} c={self.close}"


class SessionLabel(models.Model):
    """A fact about one market session (e.g. trend vs balance), written by an analytics job."""

    symbol = models.CharField(max_length=16)
    session_date = models.DateField()
    label = models.CharField(max_length=32)
    stats = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["symbol", "session_date"], name="session_label_unique")
        ]
        ordering = ["-session_date", "symbol"]

    def __str__(self) -> str:
        return f"{self.symbol} {self.session_date} {self.label}"
