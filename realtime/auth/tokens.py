"""The project's JWTs: simplejwt's, with an `iat` precise to the microsecond.

Logout, deactivation and a password change refuse every access token
issued before that moment (realtime.auth.revocation). simplejwt writes
`iat` in whole seconds, so a token issued just before a logout and one
issued just after it (a fresh sign-in) could share an `iat`; a fractional
`iat` (RFC 7519 NumericDate allows one) tells them apart. Tokens with a
whole-second `iat` still validate.
"""

from __future__ import annotations

from datetime import datetime

from django.contrib.auth import get_user_model
from rest_framework_simplejwt import serializers, tokens
from rest_framework_simplejwt.exceptions import AuthenticationFailed, TokenError
from rest_framework_simplejwt.settings import api_settings


class _PreciseIssuedAt:
    def set_iat(self, claim: str = "iat", at_time: datetime | None = None) -> None:
        self.payload[claim] = round((at_time or self.current_time).timestamp(), 6)


class AccessToken(_PreciseIssuedAt, tokens.AccessToken):
    def verify(self) -> None:
        super().verify()
        # Only this server signs tokens, but a user id that is not an integer
        # would fail in the user lookup: refuse it like any other bad token.
        user_id = self.payload.get(api_settings.USER_ID_CLAIM)
        if user_id is not None and not (
            (isinstance(user_id, int) and not isinstance(user_id, bool))
            or (isinstance(user_id, str) and user_id.isascii() and user_id.isdigit())
        ):
            raise TokenError("Token is invalid")


class RefreshToken(_PreciseIssuedAt, tokens.RefreshToken):
    access_token_class = AccessToken


class TokenObtainPairSerializer(serializers.TokenObtainPairSerializer):
    token_class = RefreshToken


class TokenRefreshSerializer(serializers.TokenRefreshSerializer):
    """simplejwt's refresh, minus its 500 for a refresh token whose user was deleted."""

    token_class = RefreshToken

    def validate(self, attrs):
        refresh = self.token_class(attrs["refresh"])
        user_id = refresh.payload.get(api_settings.USER_ID_CLAIM)
        if not get_user_model().objects.filter(**{api_settings.USER_ID_FIELD: user_id}).exists():
            raise AuthenticationFailed(
                self.error_messages["no_active_account"], "no_active_account"
            )
        return super().validate(attrs)
