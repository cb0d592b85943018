"""Admin for operator-controlled risk: per-symbol overrides and the trading state.

A state change made here goes through risk.services.trading_state_set, so it is audited
(who, when, why) like a change made through the API or by the kill switch."""

from django import forms
from django.contrib import admin, messages
from django.core.validators import RegexValidator
from django.utils.html import format_html_join

from risk.models import SymbolOverride, TradingMode, TradingState, TradingStateChange

_SYMBOL = RegexValidator(r"^[A-Za-z][A-Za-z0-9.]{0,9}$", "not a ticker symbol")


class SymbolOverrideForm(forms.ModelForm):
    symbol = forms.CharField(max_length=16, validators=[_SYMBOL])

    class Meta:
        model = SymbolOverride
        fields = [
            "symbol",
            "enabled",
            "qty",
            "stop_pct",
            "tp_pct",
            "trail_pct",
            "trail_act_pct",
            "window_start",
            "window_end",
            "max_notional_usd",
            "spread_usd",
            "slippage_usd",
            "commission_per_share_usd",
            "commission_per_order_usd",
            "min_stop_atr",
            "min_stop_ticks",
            "min_stop_spreads",
        ]

    def clean_symbol(self):
        return self.cleaned_data["symbol"].strip().upper()


@admin.register(SymbolOverride)
class SymbolOverrideAdmin(admin.ModelAdmin):
    """Editable; SymbolOverride.clean() validates the percentages and the window."""

    form = SymbolOverrideForm
    list_display = (
        "symbol",
        "enabled",
        "qty",
        "stop_pct",
        "tp_pct",
        "trail_pct",
        "trail_act_pct",
        "window_start",
        "window_end",
        "max_notional_usd",
        "updated_at",
    )
    list_editable = ("enabled",)
    list_filter = ("enabled",)
    search_fields = ("symbol",)


def _state_action(state: str, label: str):
    def action(modeladmin, request, queryset):
        from risk.services import trading_state_set

        for row in queryset:
            trading_state_set(
                state=state,
                reason=f"set to {state} in the admin",
                user=request.user,
                actor=request.user.get_username(),
                account=row.account,
            )
        modeladmin.message_user(request, f"Trading state set to {state}.", messages.WARNING)

    action.__name__ = f"set_{state.lower()}"
    return admin.action(description=label, permissions=["change"])(action)


@admin.register(TradingState)
class TradingStateAdmin(admin.ModelAdmin):
    list_display = ("account", "state", "reason", "changed_by", "changed_at")
    readonly_fields = ("changed_by", "changed_at", "recent_changes")
    fields = ("account", "state", "reason", "changed_by", "changed_at", "recent_changes")
    actions = [
        _state_action(TradingMode.HALTED, "HALT trading (only cancels and flatten)"),
        _state_action(TradingMode.REDUCING, "Set REDUCING (exits only)"),
        _state_action(TradingMode.ACTIVE, "Resume: set ACTIVE"),
    ]

    def save_model(self, request, obj, form, change):
        from risk.services import trading_state_set

        saved = trading_state_set(
            state=obj.state,
            reason=obj.reason or "changed in the admin",
            user=request.user,
            actor=request.user.get_username(),
            account=obj.account,
        )
        obj.pk = saved.pk

    @admin.display(description="audit trail (latest 20)")
    def recent_changes(self, obj: TradingState):
        rows = TradingStateChange.objects.filter(account=obj.account)[:20]
        return (
            format_html_join(
                "\n",
                "<div>{} — {} → {} by {}: {}</div>",
                (
                    (f"{r.at:%Y-%m-%d %H:%M:%S}", r.from_state, r.to_state, r.actor, r.reason)
                    for r in rows
                ),
            )
            or "-"
        )


@admin.register(TradingStateChange)
class TradingStateChangeAdmin(admin.ModelAdmin):
    """The audit trail: read-only."""

    list_display = ("at", "account", "from_state", "to_state", "actor", "changed_by", "reason")
    list_filter = ("to_state", "account")
    search_fields = ("reason", "actor")
    date_hierarchy = "at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
