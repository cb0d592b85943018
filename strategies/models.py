"""The signal journal: every later stage annotates the Signal row born here."""

from django.db import models


class SignalOutcome(models.TextChoices):
    GENERATED = "generated"
    OPTIONS_BLOCKED = "options_blocked"
    POLICY_BLOCKED = "policy_blocked"
    RISK_BLOCKED = "risk_blocked"
    APPROVED = "approved"
    DRY_RUN = "dry_run"
    SUBMITTED = "submitted"
    FAILED = "failed"
    PAPER_ONLY = "paper_only"  # older rows: a paper-mode setup's signal, journaled only


class Book(models.TextChoices):
    """The ledger a signal trades on (`trading.paper_book`)."""

    ACCOUNT = "account"  # the account: Tradier with DRY_RUN=0, the paper broker with DRY_RUN=1
    PAPER = "paper"  # the paper book: a setup in paper mode while the account trades live


class Side(models.TextChoices):
    BUY = "buy"
    SELL = "sell"


class ClaimState(models.TextChoices):
    """How far the bar-close of a claimed bar got: `claimed` (evaluated, its signals stored,
    the rest of the step may not have run) or `done` (every stage of the step ran: a
    redelivered task skips the bar instead of stepping its fills and exits again)."""

    CLAIMED = "claimed"
    DONE = "done"


class FeatureSnapshot(models.Model):
    """Features of one symbol at one bar close; its existence marks the bar as evaluated (the
    bar's claim), `state` how far its handling got."""

    symbol = models.CharField(max_length=16)
    bar_ts = models.DateTimeField()
    features = models.JSONField(default=dict)
    state = models.CharField(max_length=8, choices=ClaimState.choices, default=ClaimState.CLAIMED)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["symbol", "bar_ts"], name="feature_snapshot_unique")
        ]
        indexes = [models.Index(fields=["symbol", "-bar_ts"], name="featsnap_symbol_ts")]

    def __str__(self) -> str:
        return f"{self.symbol} {self.bar_ts:%Y-%m-%d %H:%M}"


class Signal(models.Model):
    setup = models.CharField(max_length=32)
    setup_version = models.CharField(
        max_length=16, blank=True, default="", help_text="content hash of the setup definition"
    )
    symbol = models.CharField(max_length=16, help_text="symbol the setup fired on")
    execution_symbol = models.CharField(max_length=16, help_text="symbol the order trades")
    bar_ts = models.DateTimeField(help_text="start of the bar whose close fired the setup")
    side = models.CharField(max_length=4, choices=Side.choices, default=Side.BUY)
    score = models.FloatField(default=0.0)
    entry_price = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)
    stop_price = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)
    target_one = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)
    target_two = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)
    qty = models.IntegerField(null=True, blank=True)
    session_policy = models.CharField(max_length=32, blank=True, default="")
    book = models.CharField(
        max_length=8,
        choices=Book.choices,
        default=Book.ACCOUNT,
        help_text="account, or the paper book of a setup in paper mode while trading live",
    )
    features = models.JSONField(default=dict, blank=True)
    checks = models.JSONField(
        default=list, blank=True, help_text="[{stage, code, passed, message}] for every check run"
    )
    reasons = models.JSONField(default=list, blank=True, help_text="codes of the failed checks")
    outcome = models.CharField(
        max_length=20, choices=SignalOutcome.choices, default=SignalOutcome.GENERATED
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["symbol", "setup", "bar_ts"], name="signal_unique_bar")
        ]
        indexes = [
            models.Index(fields=["-bar_ts"], name="signal_bar_ts_desc"),
            models.Index(fields=["setup", "outcome"], name="signal_setup_outcome"),
            models.Index(fields=["symbol", "-bar_ts"], name="signal_symbol_ts"),
            # the scan's sweep of signals left undecided (trading.pipeline.signals_resume)
            models.Index(
                fields=["created_at"],
                name="signal_undecided",
                condition=models.Q(outcome="generated"),
            ),
        ]
        ordering = ["-bar_ts", "-id"]

    def __str__(self) -> str:
        return f"{self.setup} {self.symbol} {self.bar_ts:%Y-%m-%d %H:%M} {self.outcome}"

    @property
    def tag(self) -> str:
        """Idempotency key for the entry order: letters, digits and '-' only (Tradier)."""
        from strategies.tags import signal_tag

        return signal_tag(self.symbol, self.setup, self.bar_ts)


class SetupMode(models.TextChoices):
    PAPER = "paper"
    LIVE = "live"


class UserSetup(models.Model):
    """A setup definition written in the admin or through the API (same YAML as a file)."""

    name = models.CharField(max_length=32, unique=True)
    text = models.TextField(help_text="the YAML definition (see docs/strategy.md)")
    version = models.CharField(max_length=16, editable=False)
    enabled = models.BooleanField(default=True)
    updated_by = models.CharField(max_length=150, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} {self.version}"


class SetupControl(models.Model):
    """Operator switches of any setup (file, admin, plug-in, built-in): an enable/disable
    override and the one version approved for live trading. A setup whose current version is
    not the approved one trades on paper only."""

    name = models.CharField(max_length=32, unique=True)
    enabled = models.BooleanField(null=True, blank=True, help_text="None: as its definition")
    live_version = models.CharField(max_length=16, blank=True, default="")
    approved_by = models.CharField(max_length=150, blank=True, default="")
    approved_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.name


class SetupAudit(models.Model):
    """Every change to a setup: who, when, which version, what."""

    at = models.DateTimeField(auto_now_add=True)
    actor = models.CharField(max_length=150)
    setup = models.CharField(max_length=32)
    version = models.CharField(max_length=16, blank=True, default="")
    action = models.CharField(max_length=32)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["setup", "-at"], name="setup_audit_setup_at")]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.actor} {self.action} {self.setup}"
