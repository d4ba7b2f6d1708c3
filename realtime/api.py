"""The durable inbox over REST (SPEC §4): GET /api/events/?after_seq=N."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.generics import ListAPIView

from realtime.models import Event
from realtime.rest.openapi import QuerySerializer
from realtime.rest.pagination import IntegerCursorPagination


class EventSerializer(serializers.ModelSerializer):
    class Meta:
        model = Event
        fields = ["seq", "type", "payload", "created_at"]


class SeqPagination(IntegerCursorPagination):
    # Oldest first by the (user, seq) unique key.
    ordering = "seq"
    page_size = 200
    page_size_query_param = "page_size"
    max_page_size = 1000


class EventsQuerySerializer(QuerySerializer):
    after_seq = serializers.IntegerField(required=False, help_text="only seq > N")


class EventList(ListAPIView):
    """The durable inbox after `after_seq`, oldest first."""

    serializer_class = EventSerializer
    pagination_class = SeqPagination

    @extend_schema(parameters=[EventsQuerySerializer])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        query = EventsQuerySerializer(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        queryset = Event.objects.filter(user=self.request.user)
        if "after_seq" in query.validated_data:
            queryset = queryset.filter(seq__gt=query.validated_data["after_seq"])
        return queryset
