from django.urls import path

from strategies import views

urlpatterns = [
    path("signals", views.SignalListApi.as_view(), name="signal-list"),
    path("signals/<int:pk>", views.SignalDetailApi.as_view(), name="signal-detail"),
]
