from django.urls import path

from trading import views

urlpatterns = [
    path("orders", views.OrderListApi.as_view(), name="order-list"),
    path("orders/<int:pk>", views.OrderDetailApi.as_view(), name="order-detail"),
    path("fills", views.FillListApi.as_view(), name="fill-list"),
    path("trades", views.TradeListApi.as_view(), name="trade-list"),
    path("trades/<int:pk>", views.TradeDetailApi.as_view(), name="trade-detail"),
]
