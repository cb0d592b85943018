"""Admin for stored backtests and parameter sweeps."""

from django.contrib import admin

from analytics.models import BacktestRun, DriftEntry, SweepRun, WalkForwardRun


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


@admin.register(WalkForwardRun)
class WalkForwardRunAdmin(admin.ModelAdmin):
    """Runs are started with `manage.py walkforward` or the API; "run again" repeats a plan."""

    list_display = ("id", "status", "fold_count", "candidate_count", "pbo", "created_at",
                    "finished_at")  # fmt: skip
    list_filter = ("status",)
    readonly_fields = ("plan", "folds", "candidates", "status", "summary", "created_at",
                       "finished_at")  # fmt: skip
    actions = ["run_again"]

    def has_add_permission(self, request):
        return False

    @admin.display(description="folds")
    def fold_count(self, obj) -> int:
        return len(obj.folds or [])

    @admin.display(description="candidates")
    def candidate_count(self, obj) -> int:
        return len(obj.candidates or [])

    @admin.display(description="PBO")
    def pbo(self, obj):
        return ((obj.summary or {}).get("overfitting", {}).get("pbo") or {}).get("pbo")

    @admin.action(description="Run again with the same plan")
    def run_again(self, request, queryset):
        from analytics.walkforward import WalkForwardError, WalkForwardPlan, walkforward_start

        for run in queryset:
            try:
                new = walkforward_start(WalkForwardPlan(**run.plan))
            except (WalkForwardError, OSError, TypeError) as exc:
                self.message_user(request, f"#{run.pk}: {exc}", level="error")
                continue
            self.message_user(request, f"started walk-forward #{new.pk} ({new.status})")


@admin.register(DriftEntry)
class DriftEntryAdmin(admin.ModelAdmin):
    list_display = ("signal_ts", "setup", "symbol", "status", "live_entry_price",
                    "sim_entry_price", "entry_slippage_bps", "exit_slippage_bps",
                    "entry_delay_sec", "live_pnl", "sim_pnl")  # fmt: skip
    list_filter = ("status", "setup", "symbol")
    date_hierarchy = "signal_ts"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]
