"""Admin for the ledger: orders (with a cancel action that calls the service), fills,
positions with unrealised P&L, trades with their exit plans, account snapshots, the audit of
operator actions and worker heartbeats."""

from django.contrib import admin, messages

from trading.models import (
    AccountSnapshot,
    AuditEvent,
    Fill,
    Order,
    OrderEvent,
    Position,
    Trade,
    WorkerHeartbeat,
)


class OrderEventInline(admin.TabularInline):
    model = OrderEvent
    fields = ("at", "from_status", "to_status", "cause")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


class FillInline(admin.TabularInline):
    model = Fill
    fields = ("ts", "broker_fill_id", "side", "qty", "price", "fee")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.action(description="Cancel selected working orders (at the broker)")
def cancel_orders(modeladmin, request, queryset):
    if not request.user.has_perm("trading.can_trade"):
        modeladmin.message_user(request, "You need trading.can_trade to cancel.", messages.ERROR)
        return
    from trading.services import order_cancel

    done, failed = 0, []
    for order in queryset:
        if not order.is_working:
            continue
        try:
            order_cancel(order=order)
            done += 1
        except Exception as exc:  # report per order, keep cancelling the rest
            failed.append(f"#{order.pk}: {exc}")
    modeladmin.message_user(request, f"Cancel requested for {done} order(s).", messages.SUCCESS)
    if failed:
        modeladmin.message_user(request, "Not cancelled: " + "; ".join(failed), messages.ERROR)


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "created_at",
        "symbol",
        "side",
        "qty",
        "order_type",
        "order_class",
        "role",
        "status",
        "filled_qty",
        "avg_fill_price",
        "broker",
        "broker_order_id",
    )
    list_filter = ("status", "role", "order_type", "order_class", "broker", "book", "symbol")
    search_fields = ("tag", "broker_order_id", "symbol")
    date_hierarchy = "created_at"
    actions = [cancel_orders]
    inlines = [OrderEventInline, FillInline]
    raw_id_fields = ("parent", "trade", "signal")
    show_full_result_count = False

    def get_readonly_fields(self, request, obj=None):
        # The ledger follows the broker; hand edits would desynchronise it.
        return [f.name for f in Order._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(Fill)
class FillAdmin(admin.ModelAdmin):
    list_display = ("ts", "symbol", "side", "qty", "price", "fee", "order", "broker_fill_id")
    list_filter = ("side", "symbol")
    search_fields = ("symbol", "broker_fill_id", "order__tag")
    date_hierarchy = "ts"
    raw_id_fields = ("order",)

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in Fill._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(Position)
class PositionAdmin(admin.ModelAdmin):
    list_display = (
        "symbol",
        "qty",
        "avg_price",
        "last_price",
        "unrealised_pnl",
        "realized_pnl",
        "updated_at",
    )
    search_fields = ("symbol",)
    readonly_fields = (
        "symbol",
        "qty",
        "avg_price",
        "last_price",
        "unrealised_pnl",
        "realized_pnl",
        "updated_at",
    )

    @admin.display(description="unrealised P&L")
    def unrealised_pnl(self, obj: Position):
        return obj.unrealized_pnl

    def has_add_permission(self, request):
        return False


class TradeOrderInline(admin.TabularInline):
    model = Order
    fk_name = "trade"
    fields = ("created_at", "role", "side", "qty", "order_type", "price", "stop_price", "status")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Trade)
class TradeAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "created_at",
        "setup",
        "symbol",
        "execution_symbol",
        "qty",
        "remaining_qty",
        "entry_price",
        "stop_price",
        "target_one",
        "target_two",
        "status",
        "exit_reason",
        "realized_pnl",
    )
    list_filter = ("status", "book", "setup", "exit_reason", "execution_symbol")
    search_fields = ("symbol", "execution_symbol", "setup")
    date_hierarchy = "created_at"
    raw_id_fields = ("signal",)
    inlines = [TradeOrderInline]
    fieldsets = (
        (None, {"fields": ("signal", "setup", "symbol", "execution_symbol", "side", "status")}),
        ("Size", {"fields": ("qty", "remaining_qty", "entry_price")}),
        (
            "Exit plan",
            {
                "fields": (
                    "initial_stop_price",
                    "stop_price",
                    "target_one",
                    "target_two",
                    "partial_done",
                    "trail_pct",
                    "trail_act_pct",
                    "trail_high",
                    "trail_active",
                    "deadline",
                )
            },
        ),
        (
            "Result",
            {"fields": ("exit_reason", "realized_pnl", "created_at", "opened_at", "closed_at")},
        ),
    )

    def get_readonly_fields(self, request, obj=None):
        # The exit manager owns this state; edits happen through its services.
        return [f.name for f in Trade._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(AccountSnapshot)
class AccountSnapshotAdmin(admin.ModelAdmin):
    list_display = ("ts", "broker", "equity", "cash", "buying_power", "day_pnl", "open_pnl")
    list_filter = ("broker",)
    date_hierarchy = "ts"

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in AccountSnapshot._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ("at", "action", "user", "details")
    list_filter = ("action",)
    date_hierarchy = "at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(admin.ModelAdmin):
    list_display = ("name", "at", "info")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(OrderEvent)
class OrderEventAdmin(admin.ModelAdmin):
    """Order state transitions (also shown inline on each order)."""

    list_display = ("at", "order", "from_status", "to_status", "cause")
    list_filter = ("to_status",)
    search_fields = ("order__tag", "cause")
    raw_id_fields = ("order",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
