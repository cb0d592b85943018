"""The live dashboard page (`/`) and its one write: halting or resuming trading.

The page renders a first snapshot server-side (it shows something even before the websocket
connects) and then lives on `/ws/live/` (analytics.live). Included from the root URLconf with
`path("", include("analytics.dashboard"))`.
"""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import path
from django.views.decorators.http import require_GET, require_POST

from analytics import dashboard_selectors as selectors
from risk.models import TradingMode
from risk.services import trading_state_set

TRADE_PERMISSION = "trading.can_trade"
LOGIN_URL = "dashboard-login"  # the admin's login admits staff only; traders need not be staff


class DashboardLoginView(auth_views.LoginView):
    template_name = "dashboard/login.html"
    redirect_authenticated_user = True
    next_page = "dashboard"


@require_GET
@login_required(login_url=LOGIN_URL)
def dashboard_view(request: HttpRequest) -> HttpResponse:
    context = {
        "snapshot": selectors.panel_snapshot(),
        "symbols": selectors.dashboard_symbols(),
        "can_trade": request.user.has_perm(TRADE_PERMISSION),
        "modes": TradingMode.values,
    }
    return render(request, "dashboard/index.html", context)


@require_POST
def trading_state_view(request: HttpRequest) -> JsonResponse:
    """Set the trading state from the page: ACTIVE, REDUCING or HALTED, with a reason.
    Needs the trading permission; every change is audited by `trading_state_set`."""
    if not request.user.is_authenticated:
        return JsonResponse({"error": "login required"}, status=401)
    if not request.user.has_perm(TRADE_PERMISSION):
        return JsonResponse({"error": "you do not have the trading permission"}, status=403)
    state = (request.POST.get("state") or "").upper()
    if state not in TradingMode.values:
        return JsonResponse(
            {"error": f"state must be one of {', '.join(TradingMode.values)}"}, status=400
        )
    reason = (request.POST.get("reason") or "").strip() or f"set to {state} from the dashboard"
    trading_state_set(state=state, reason=reason, user=request.user, actor="dashboard")
    return JsonResponse({"trading_state": selectors.trading_state_summary()})


urlpatterns = [
    path("", dashboard_view, name="dashboard"),
    path("login/", DashboardLoginView.as_view(), name="dashboard-login"),
    path("logout/", auth_views.LogoutView.as_view(next_page=LOGIN_URL), name="dashboard-logout"),
    path("dashboard/trading-state", trading_state_view, name="dashboard-trading-state"),
]
