from django.urls import path

from marketdata import views

urlpatterns = [
    path("bars", views.BarListApi.as_view(), name="bar-list"),
]
