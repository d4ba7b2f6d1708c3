"""The account endpoints: logout, the current user, and finding people by name
(the demo's "new conversation" picker, GET /api/users/?q=)."""

from __future__ import annotations

from django.db import transaction
from django.db.models import Case, IntegerField, Value, When
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.decorators import api_view
from rest_framework.response import Response
from rest_framework_simplejwt import views as jwt_views
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.serializers import TokenObtainPairSerializer, TokenRefreshSerializer
from rest_framework_simplejwt.settings import api_settings

from accounts.services import LOGGED_OUT, sessions_end
from realtime.auth.tokens import RefreshToken
from realtime.rest.openapi import QuerySerializer, StrictCharField, error_responses
from realtime.selectors import active_users

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


class UserSearchQuerySerializer(QuerySerializer):
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


class MeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    email = serializers.EmailField()
    is_staff = serializers.BooleanField()


@extend_schema(responses=MeSerializer)
@api_view(["GET"])
def me(request):
    return Response(MeSerializer(request.user).data)


class LogoutSerializer(serializers.Serializer):
    refresh = StrictCharField()


@extend_schema(request=LogoutSerializer, responses={204: None})
@api_view(["POST"])
def logout(request):
    """Blacklist the refresh token, refuse the user's access tokens, close their sockets (4001)."""
    serializer = LogoutSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    try:
        refresh = RefreshToken(serializer.validated_data["refresh"])
    except TokenError:
        raise serializers.ValidationError({"refresh": ["invalid or expired token"]}) from None
    if str(refresh.get(api_settings.USER_ID_CLAIM)) != str(request.user.pk):
        raise serializers.ValidationError({"refresh": ["not your token"]})
    with transaction.atomic():
        refresh.blacklist()
        sessions_end(user_ids=[request.user.pk], message=LOGGED_OUT, all_refresh_tokens=False)
    return Response(status=204)


# simplejwt's views, with the 401 they answer for wrong credentials or a bad refresh token.
@extend_schema(responses={200: TokenObtainPairSerializer, **error_responses(401)})
class TokenObtainView(jwt_views.TokenObtainPairView):
    pass


@extend_schema(responses={200: TokenRefreshSerializer, **error_responses(401)})
class TokenRefreshView(jwt_views.TokenRefreshView):
    pass
