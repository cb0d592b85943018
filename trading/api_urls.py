from django.urls import path, re_path

from trading import views

urlpatterns = [
    path("orders", views.OrderListApi.as_view(), name="order-list"),
    path("orders/cancel_all", views.OrdersCancelAllApi.as_view(), name="orders-cancel-all"),
    path("orders/cancel_stale", views.OrdersCancelStaleApi.as_view(), name="orders-cancel-stale"),
    path("orders/<str:order_id>", views.OrderByBrokerIdApi.as_view(), name="order-detail"),
    path("orders/<str:order_id>/cancel", views.OrderCancelApi.as_view(), name="order-cancel"),
    path("fills", views.FillListApi.as_view(), name="fill-list"),
    path("trades", views.TradeListApi.as_view(), name="trade-list"),
    re_path(r"^trades/(?P<pk>[0-9]{1,18})$", views.TradeDetailApi.as_view(), name="trade-detail"),
    path("positions", views.PositionListApi.as_view(), name="position-list"),
    path("positions/flatten", views.PositionsFlattenApi.as_view(), name="positions-flatten"),
    path("account/balances", views.AccountBalancesApi.as_view(), name="account-balances"),
    path("trade/dryrun", views.TradeDryRunApi.as_view(), name="trade-dryrun"),
    path("bracket/preview", views.BracketPreviewApi.as_view(), name="bracket-preview"),
    path("bracket/place", views.BracketPlaceApi.as_view(), name="bracket-place"),
    path("account/snapshots", views.AccountSnapshotListApi.as_view(), name="account-snapshots"),
]
