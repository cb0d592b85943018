"""Admin for the signal journal: filter by setup, outcome and date; the reasons on every row."""

from django.contrib import admin

from strategies.models import FeatureSnapshot, Signal


@admin.register(Signal)
class SignalAdmin(admin.ModelAdmin):
    list_display = (
        "bar_ts",
        "setup",
        "symbol",
        "execution_symbol",
        "side",
        "outcome",
        "reasons_text",
        "qty",
        "entry_price",
        "stop_price",
        "score",
    )
    list_filter = ("setup", "outcome", "side", "symbol", ("bar_ts", admin.DateFieldListFilter))
    search_fields = ("symbol", "execution_symbol", "setup", "reasons")
    date_hierarchy = "bar_ts"
    show_full_result_count = False
    readonly_fields = [f.name for f in Signal._meta.fields]

    @admin.display(description="reasons")
    def reasons_text(self, obj: Signal) -> str:
        return ", ".join(str(r) for r in obj.reasons or []) or "-"

    def has_add_permission(self, request):
        return False


@admin.register(FeatureSnapshot)
class FeatureSnapshotAdmin(admin.ModelAdmin):
    list_display = ("symbol", "bar_ts", "created_at")
    search_fields = ("symbol",)
    date_hierarchy = "bar_ts"
    show_full_result_count = False
    readonly_fields = ("symbol", "bar_ts", "features", "created_at")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
