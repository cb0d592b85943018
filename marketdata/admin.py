"""Admin for market data: bars and ticks are read-only (the feeds own them)."""

from django.contrib import admin

from marketdata.models import Bar, SessionLabel, Tick


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows written by feeds and jobs: visible, never hand-edited."""

    show_full_result_count = False  # no COUNT(*) over a large table on every filter

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Bar)
class BarAdmin(ReadOnlyAdmin):
    list_display = ("symbol", "ts", "open", "high", "low", "close", "volume", "vwap", "source")
    list_filter = ("source",)
    search_fields = ("symbol",)
    date_hierarchy = "ts"
    ordering = ("-ts",)


@admin.register(Tick)
class TickAdmin(ReadOnlyAdmin):
    list_display = ("symbol", "ts", "close", "volume", "avg_trade_size", "source", "received_at")
    list_filter = ("source",)
    search_fields = ("symbol",)
    date_hierarchy = "ts"
    ordering = ("-ts",)


@admin.register(SessionLabel)
class SessionLabelAdmin(admin.ModelAdmin):
    list_display = ("session_date", "symbol", "label", "created_at")
    list_filter = ("label", "symbol")
    search_fields = ("symbol", "label")
    date_hierarchy = "session_date"
    readonly_fields = ("created_at",)
