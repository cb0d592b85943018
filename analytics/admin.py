"""Admin for stored backtests and parameter sweeps."""

from django.contrib import admin

from analytics.models import BacktestRun, SweepRun


class BacktestRunInline(admin.TabularInline):
    model = BacktestRun
    fields = ("name", "params", "stats", "created_at")
    readonly_fields = fields
    extra = 0
    show_change_link = True
    can_delete = False


@admin.register(BacktestRun)
class BacktestRunAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "sweep", "created_at")
    search_fields = ("name",)
    list_filter = (("created_at", admin.DateFieldListFilter),)
    readonly_fields = ("name", "params", "stats", "trades", "sweep", "created_at")

    def has_add_permission(self, request):
        return False


@admin.register(SweepRun)
class SweepRunAdmin(admin.ModelAdmin):
    list_display = ("id", "status", "created_at", "finished_at")
    list_filter = ("status",)
    readonly_fields = ("grid", "status", "summary", "created_at", "finished_at")
    inlines = [BacktestRunInline]

    def has_add_permission(self, request):
        return False
