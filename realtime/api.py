"""The durable inbox over REST (SPEC §4): GET /api/events/?after_seq=N."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.generics import ListAPIView

from realtime import registry
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

    def paginate_queryset(self, queryset):
        """The page as the socket would replay it: the apps' rewriters applied."""
        page = super().paginate_queryset(queryset)
        rows = registry.rewrite_events([(event.seq, event.type, event.payload) for event in page])
        for event, (_, event_type, payload) in zip(page, rows, strict=True):
            event.type, event.payload = event_type, payload
        return page

    def get_queryset(self):
        query = EventsQuerySerializer(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        queryset = Event.objects.filter(user=self.request.user)
        if "after_seq" in query.validated_data:
            queryset = queryset.filter(seq__gt=query.validated_data["after_seq"])
        return queryset
