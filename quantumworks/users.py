"""Finding people by name: the demo's "new conversation" picker (GET /api/users/?q=)."""

from __future__ import annotations

from django.db.models import Case, IntegerField, Value, When
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.decorators import api_view
from rest_framework.response import Response

from quantumworks.selectors import active_users

MAX_RESULTS = 10


def users_search(*, query: str, exclude_id: int, limit: int = MAX_RESULTS) -> list[dict]:
    """Active users whose username contains `query`, prefix matches first."""
    return list(
        active_users()
        .filter(username__icontains=query)
        .exclude(id=exclude_id)
        .annotate(
            rank=Case(
                When(username__istartswith=query, then=Value(0)),
                default=Value(1),
                output_field=IntegerField(),
            )
        )
        .order_by("rank", "username")
        .values("id", "username")[:limit]
    )


class UserSearchQuerySerializer(serializers.Serializer):
    q = serializers.CharField(min_length=1, max_length=150, trim_whitespace=True)


class UserBriefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()


@extend_schema(parameters=[UserSearchQuerySerializer], responses=UserBriefSerializer(many=True))
@api_view(["GET"])
def user_search(request):
    """Up to 10 active users (not you) whose username contains `q`."""
    query = UserSearchQuerySerializer(data=request.query_params)
    query.is_valid(raise_exception=True)
    found = users_search(query=query.validated_data["q"], exclude_id=request.user.id)
    return Response(UserBriefSerializer(found, many=True).data)
