"""Notification REST endpoints (SPEC §7): list, read one, read all."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.exceptions import NotFound
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from notifications import selectors, services
from notifications.serializers import (
    NotificationListQuerySerializer,
    NotificationSerializer,
    ReadAllResultSerializer,
)
from realtime.rest.openapi import ErrorSerializer
from realtime.rest.pagination import NewestFirstPagination


class NotificationPagination(NewestFirstPagination):
    def get_paginated_response_schema(self, schema):
        response_schema = super().get_paginated_response_schema(schema)
        response_schema["properties"]["unread_count"] = {
            "type": "integer",
            "description": "the user's unread notifications, whatever the filter",
        }
        response_schema["required"].append("unread_count")
        return response_schema


class NotificationList(ListAPIView):
    """The user's notifications, newest first, with their unread count."""

    serializer_class = NotificationSerializer
    pagination_class = NotificationPagination

    @extend_schema(parameters=[NotificationListQuerySerializer])
    def get(self, request: Request, *args, **kwargs) -> Response:
        response = super().get(request, *args, **kwargs)
        response.data["unread_count"] = selectors.notifications_unread_count(
            user_id=request.user.id
        )
        return response

    def get_queryset(self):
        query = NotificationListQuerySerializer(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        return selectors.notifications_for_user(
            user_id=self.request.user.id, unread_only=query.validated_data["unread"]
        )


class NotificationRead(APIView):
    @extend_schema(
        request=None,
        responses={
            200: NotificationSerializer,
            404: OpenApiResponse(ErrorSerializer, description="no such notification of yours"),
        },
    )
    def post(self, request: Request, notification_id: int) -> Response:
        user_id = request.user.id
        if not services.notification_mark_read(user_id=user_id, notification_id=notification_id):
            raise NotFound()
        notification = selectors.notification_get_for_user(
            user_id=user_id, notification_id=notification_id
        )
        return Response(NotificationSerializer(notification).data)


class NotificationReadAll(APIView):
    @extend_schema(request=None, responses=ReadAllResultSerializer)
    def post(self, request: Request) -> Response:
        user_id = request.user.id
        marked = services.notifications_mark_all_read(user_id=user_id)
        unread = selectors.notifications_unread_count(user_id=user_id)
        return Response(
            ReadAllResultSerializer({"marked_read": marked, "unread_count": unread}).data
        )
