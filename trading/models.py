"""The ledger: orders with their transition history, fills, positions, managed trades and
account snapshots. Money and quantities are Decimal/int here."""

from django.conf import settings
from django.db import models

from strategies.models import Book

BOOK = {"max_length": 8, "choices": Book.choices, "default": Book.ACCOUNT}

PRICE = {"max_digits": 14, "decimal_places": 4}
MONEY = {"max_digits": 16, "decimal_places": 4}


class OrderStatus(models.TextChoices):
    NEW = "new"
    SUBMITTED = "submitted"
    OPEN = "open"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    EXPIRED = "expired"


TERMINAL_STATUSES = frozenset(
    {OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED, OrderStatus.EXPIRED}
)
WORKING_STATUSES = frozenset(
    {OrderStatus.NEW, OrderStatus.SUBMITTED, OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED}
)


class OrderType(models.TextChoices):
    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"
    STOP_LIMIT = "stop_limit"


class OrderClass(models.TextChoices):
    EQUITY = "equity"
    OCO = "oco"
    OTO = "oto"
    OTOCO = "otoco"


class OrderRole(models.TextChoices):
    ENTRY = "entry"
    STOP = "stop"
    TARGET_ONE = "target_one"
    TARGET_TWO = "target_two"
    EXIT = "exit"
    FLATTEN = "flatten"
    MANUAL = "manual"
    EXTERNAL = "external"


class Order(models.Model):
    tag = models.CharField(max_length=255, unique=True, help_text="idempotency key sent as `tag`")
    broker = models.CharField(max_length=16, default="paper")
    book = models.CharField(**BOOK, help_text="account, or the paper book (trading.paper_book)")
    broker_order_id = models.CharField(max_length=64, blank=True, default="", db_index=True)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="children"
    )
    trade = models.ForeignKey(
        "Trade", null=True, blank=True, on_delete=models.SET_NULL, related_name="orders"
    )
    signal = models.ForeignKey(
        "strategies.Signal", null=True, blank=True, on_delete=models.SET_NULL, related_name="orders"
    )
    role = models.CharField(max_length=16, choices=OrderRole.choices, default=OrderRole.ENTRY)
    symbol = models.CharField(max_length=16)
    side = models.CharField(max_length=16)
    qty = models.PositiveIntegerField()
    order_type = models.CharField(max_length=12, choices=OrderType.choices)
    order_class = models.CharField(max_length=8, choices=OrderClass.choices, default="equity")
    duration = models.CharField(max_length=8, default="day")
    price = models.DecimalField(**PRICE, null=True, blank=True)
    stop_price = models.DecimalField(**PRICE, null=True, blank=True)
    legs = models.JSONField(default=list, blank=True)
    status = models.CharField(max_length=20, choices=OrderStatus.choices, default=OrderStatus.NEW)
    filled_qty = models.PositiveIntegerField(default=0)
    avg_fill_price = models.DecimalField(**PRICE, null=True, blank=True)
    request_payload = models.JSONField(default=dict, blank=True)
    response_payload = models.JSONField(default=dict, blank=True)
    reject_reason = models.CharField(max_length=255, blank=True, default="")
    created_at = models.DateTimeField(help_text="market-clock time the order was created")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["status"], name="order_status"),
            models.Index(fields=["symbol", "status"], name="order_symbol_status"),
        ]
        permissions = [("can_trade", "Can place, cancel and flatten orders")]

    def __str__(self) -> str:
        return f"#{self.pk} {self.side} {self.qty} {self.symbol} {self.order_type} {self.status}"

    @property
    def is_working(self) -> bool:
        return self.status in WORKING_STATUSES


class OrderEvent(models.Model):
    """One persisted transition of an order's state machine."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="events")
    from_status = models.CharField(max_length=20, blank=True, default="")
    to_status = models.CharField(max_length=20)
    cause = models.CharField(max_length=255, blank=True, default="")
    at = models.DateTimeField()

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.order_id}: {self.from_status}->{self.to_status}"


class Fill(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="fills")
    broker_fill_id = models.CharField(max_length=64, help_text="unique per order")
    symbol = models.CharField(max_length=16)
    side = models.CharField(max_length=16)
    qty = models.PositiveIntegerField()
    price = models.DecimalField(**PRICE)
    fee = models.DecimalField(**MONEY, default=0)
    ts = models.DateTimeField()

    class Meta:
        ordering = ["-ts", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["order", "broker_fill_id"], name="fill_unique")
        ]

    def __str__(self) -> str:
        return f"{self.side} {self.qty} {self.symbol} @ {self.price}"


class Position(models.Model):
    """Net position per symbol and book as the ledger knows it (the account book is reconciled
    against the broker; the paper book never is)."""

    book = models.CharField(**BOOK)
    symbol = models.CharField(max_length=16)
    qty = models.IntegerField(default=0)
    avg_price = models.DecimalField(**PRICE, default=0)
    realized_pnl = models.DecimalField(**MONEY, default=0)
    last_price = models.DecimalField(**PRICE, null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["symbol"]
        constraints = [
            models.UniqueConstraint(fields=["book", "symbol"], name="position_book_symbol")
        ]

    def __str__(self) -> str:
        return f"{self.symbol} {self.qty} @ {self.avg_price}"

    @property
    def unrealized_pnl(self):
        if self.last_price is None or not self.qty:
            return 0
        return (self.last_price - self.avg_price) * self.qty


class TradeStatus(models.TextChoices):
    PENDING = "pending", "Entry working"
    OPEN = "open", "Open"
    CLOSED = "closed", "Closed"
    CANCELLED = "cancelled", "Entry never filled"


class Trade(models.Model):
    """One managed entry and its exit plan; the exit manager drives it to closed."""

    signal = models.OneToOneField(
        "strategies.Signal", null=True, blank=True, on_delete=models.SET_NULL, related_name="trade"
    )
    setup = models.CharField(max_length=32, blank=True, default="")
    book = models.CharField(**BOOK)
    symbol = models.CharField(max_length=16, help_text="signal symbol")
    execution_symbol = models.CharField(max_length=16)
    side = models.CharField(max_length=4, default="buy")
    qty = models.PositiveIntegerField()
    remaining_qty = models.PositiveIntegerField(default=0)
    entry_price = models.DecimalField(**PRICE, null=True, blank=True)
    stop_price = models.DecimalField(**PRICE)
    initial_stop_price = models.DecimalField(**PRICE)
    target_one = models.DecimalField(**PRICE, null=True, blank=True)
    target_two = models.DecimalField(**PRICE, null=True, blank=True)
    partial_done = models.BooleanField(default=False)
    trail_pct = models.DecimalField(max_digits=6, decimal_places=4, null=True, blank=True)
    trail_act_pct = models.DecimalField(max_digits=6, decimal_places=4, null=True, blank=True)
    trail_high = models.DecimalField(**PRICE, null=True, blank=True)
    trail_active = models.BooleanField(default=False)
    deadline = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=TradeStatus.choices, default="pending")
    exit_reason = models.CharField(max_length=32, blank=True, default="")
    realized_pnl = models.DecimalField(**MONEY, default=0)
    opened_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status"], name="trade_status")]

    def __str__(self) -> str:
        return f"#{self.pk} {self.setup} {self.execution_symbol} {self.status}"


class AccountSnapshot(models.Model):
    ts = models.DateTimeField(db_index=True)
    broker = models.CharField(max_length=16, default="paper")
    equity = models.DecimalField(**MONEY)
    cash = models.DecimalField(**MONEY)
    buying_power = models.DecimalField(**MONEY, null=True, blank=True)
    day_pnl = models.DecimalField(**MONEY, default=0)
    open_pnl = models.DecimalField(**MONEY, default=0)
    raw = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-ts"]

    def __str__(self) -> str:
        return f"{self.ts:%Y-%m-%d %H:%M} equity={self.equity}"


class AuditEvent(models.Model):
    """Operator actions that bypass or change safety: forced orders, flatten, halts."""

    action = models.CharField(max_length=64)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    details = models.JSONField(default=dict, blank=True)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-at"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.action}"


class WorkerHeartbeat(models.Model):
    """Last sign of life per worker process; read by the health endpoint."""

    name = models.CharField(max_length=128, unique=True)
    at = models.DateTimeField()
    info = models.JSONField(default=dict, blank=True)

    def __str__(self) -> str:
        return f"{self.name} {self.at:%H:%M:%S}"
