"""Admin for the signal journal (filter by setup, outcome and date; the reasons on every row) and
for trader-written setups (edit, approve for live, preview, backtest; the audit log)."""

from django import forms
from django.contrib import admin, messages
from django.middleware.csrf import get_token
from django.utils.html import format_html

from autotrader_site.permissions import TRADE_PERMISSION
from strategies.models import FeatureSnapshot, SetupAudit, SetupControl, Signal, UserSetup


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
    list_filter = (
        "setup",
        "book",
        "outcome",
        "side",
        "symbol",
        ("bar_ts", admin.DateFieldListFilter),
    )
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


# --- trader-written setups ---------------------------------------------------------------------


class UserSetupForm(forms.ModelForm):
    class Meta:
        model = UserSetup
        fields = ("text", "enabled")
        widgets = {
            "text": forms.Textarea(attrs={"rows": 18, "cols": 100, "class": "vLargeTextField"})
        }

    def clean_text(self):
        from strategies.setup_services import setup_validate

        text = self.cleaned_data["text"]
        result = setup_validate(text)
        if not result["valid"]:
            where = f"line {result['line']}, column {result['column']}: " if result["line"] else ""
            raise forms.ValidationError(f"{where}{result['error']}")
        if self.instance.pk and result["name"] != self.instance.name:
            raise forms.ValidationError(
                f"the name is {self.instance.name}; create a new setup for {result['name']}"
            )
        return text


@admin.register(UserSetup)
class UserSetupAdmin(admin.ModelAdmin):
    """Write a setup in the definition language (docs/strategy.md); it starts in paper mode."""

    form = UserSetupForm
    list_display = ("name", "version", "enabled", "mode", "updated_by", "updated_at")
    readonly_fields = ("name", "version", "mode", "preview_and_backtest", "updated_by")
    actions = ["approve_live", "back_to_paper", "enable", "disable"]

    @admin.display(description="mode")
    def mode(self, obj: UserSetup) -> str:
        from strategies.setups.registry import setup_get

        entry = setup_get(obj.name) if obj.pk else None
        return entry.mode if entry else "paper"

    @admin.display(description="preview / backtest")
    def preview_and_backtest(self, obj: UserSetup) -> str:
        if not obj.pk:
            return "-"
        request = getattr(self, "_request", None)
        token = get_token(request) if request is not None else ""
        return format_html(
            '<a href="/api/v1/setups/{0}/preview?symbol=SPY">where it would have fired (SPY)</a>'
            '<form method="post" action="/api/v1/setups/{0}/backtest" style="margin-top:.5em">'
            '<input type="hidden" name="csrfmiddlewaretoken" value="{1}">'
            'symbol <input name="symbol" value="SPY" size="6"> '
            'start <input name="start" type="date"> end <input name="end" type="date"> '
            '<button type="submit">Backtest (Celery)</button></form>',
            obj.name,
            token,
        )

    def get_form(self, request, obj=None, **kwargs):
        self._request = request
        return super().get_form(request, obj, **kwargs)

    def save_model(self, request, obj, form, change):
        from strategies.setup_services import user_setup_save

        row = user_setup_save(
            text=form.cleaned_data["text"],
            actor=request.user.get_username(),
            enabled=form.cleaned_data["enabled"],
        )
        obj.pk, obj.name, obj.version = row.pk, row.name, row.version

    @admin.action(description="Approve the current version for live trading")
    def approve_live(self, request, queryset):
        from strategies.setup_services import setup_go_live

        if not request.user.has_perm(TRADE_PERMISSION):
            self.message_user(request, f"needs {TRADE_PERMISSION}", level=messages.ERROR)
            return
        for row in queryset:
            setup_go_live(name=row.name, version=row.version, user=request.user)
        self.message_user(request, f"{queryset.count()} setup(s) live")

    @admin.action(description="Back to paper mode")
    def back_to_paper(self, request, queryset):
        from strategies.setup_services import setup_to_paper

        for row in queryset:
            setup_to_paper(name=row.name, actor=request.user.get_username())

    @admin.action(description="Enable")
    def enable(self, request, queryset):
        from strategies.setup_services import setup_enable

        for row in queryset:
            setup_enable(name=row.name, enabled=True, actor=request.user.get_username())

    @admin.action(description="Disable")
    def disable(self, request, queryset):
        from strategies.setup_services import setup_enable

        for row in queryset:
            setup_enable(name=row.name, enabled=False, actor=request.user.get_username())


@admin.register(SetupControl)
class SetupControlAdmin(admin.ModelAdmin):
    list_display = ("name", "enabled", "live_version", "approved_by", "approved_at")
    readonly_fields = ("name", "enabled", "live_version", "approved_by", "approved_at")

    def has_add_permission(self, request):
        return False


@admin.register(SetupAudit)
class SetupAuditAdmin(admin.ModelAdmin):
    list_display = ("at", "actor", "setup", "version", "action")
    list_filter = ("action", "setup")
    readonly_fields = ("at", "actor", "setup", "version", "action", "detail")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
