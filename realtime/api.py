"""The durable inbox over REST (SPEC §4): GET /api/events/?after_seq=N."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.generics import ListAPIView

from realtime.models import Event
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


class EventList(ListAPIView):
    """The durable inbox after `after_seq`, oldest first."""

    serializer_class = EventSerializer
    pagination_class = SeqPagination

    @extend_schema(parameters=[OpenApiParameter("after_seq", int, description="only seq > N")])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        queryset = Event.objects.filter(user=self.request.user)
        after = self.request.query_params.get("after_seq")
        if after is not None:
            try:
                queryset = queryset.filter(seq__gt=int(after))
            except ValueError:
                raise serializers.ValidationError({"after_seq": ["must be an integer"]}) from None
        return queryset
