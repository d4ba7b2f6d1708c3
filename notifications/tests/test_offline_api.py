"""SPEC §10 over REST: settings, mutes, push subscriptions — and every bad input's exact answer."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from chat.services import room_create
from conftest import authed_client
from notifications import webpush
from notifications.models import ConversationMute, NotificationSettings, PushSubscription
from notifications.tests.offline_kit import BrowserKeys

pytestmark = pytest.mark.django_db

SETTINGS = "/api/notification-settings/"
MUTES = "/api/chat/mutes/"
SUBSCRIPTIONS = "/api/push/subscriptions/"
DEFAULTS = {
    "email": "direct_and_mentions",
    "push": "direct_and_mentions",
    "hide_content": False,
    "quiet_hours": None,
}


@pytest.fixture
def alice(make_user):
    return make_user("alice")


# --- settings ---------------------------------------------------------------------
def test_settings_start_at_the_defaults_and_change_field_by_field(alice):
    client = authed_client(alice)
    assert client.get(SETTINGS).json() == DEFAULTS

    changed = client.patch(
        SETTINGS,
        {"push": "all", "quiet_hours": {"start": "22:00", "end": "07:00", "tz": "Europe/Berlin"}},
        format="json",
    )
    assert changed.status_code == 200
    expected = {
        **DEFAULTS,
        "push": "all",
        "quiet_hours": {"start": "22:00", "end": "07:00", "tz": "Europe/Berlin"},
    }
    assert changed.json() == expected
    assert client.get(SETTINGS).json() == expected

    cleared = client.patch(SETTINGS, {"quiet_hours": None, "email": "off"}, format="json")
    assert cleared.json() == {**expected, "quiet_hours": None, "email": "off"}


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({"email": "sometimes"}, {"email": ['"sometimes" is not a valid choice.']}),
        ({"push": None}, {"push": ["This field may not be null."]}),
        ({"hide_content": "yes"}, {"hide_content": ["Must be a valid boolean."]}),
        (
            {"quiet_hours": {"start": "22:00", "end": "07:00", "tz": "Mars/Olympus"}},
            {"quiet_hours": {"tz": ["Unknown time zone."]}},
        ),
        (
            {"quiet_hours": {"start": "25:00", "end": "07:00", "tz": "UTC"}},
            {
                "quiet_hours": {
                    "start": ["Time has wrong format. Use one of these formats instead: hh:mm."]
                }
            },
        ),
        (
            {"quiet_hours": {"start": "07:00", "end": "07:00", "tz": "UTC"}},
            {"quiet_hours": {"end": ["Must differ from start."]}},
        ),
        (
            {"quiet_hours": {"start": "22:00", "end": "07:00", "tz": 1}},
            {"quiet_hours": {"tz": ["Not a valid string."]}},
        ),
        (
            {"quiet_hours": {}},
            {
                "quiet_hours": {
                    "start": ["This field is required."],
                    "end": ["This field is required."],
                    "tz": ["This field is required."],
                }
            },
        ),
        (
            {"quiet_hours": {"start": "22:00"}},
            {
                "quiet_hours": {
                    "end": ["This field is required."],
                    "tz": ["This field is required."],
                }
            },
        ),
        (
            {"quiet_hours": "22-07"},
            {
                "quiet_hours": {
                    "non_field_errors": ["Invalid data. Expected a dictionary, but got str."]
                }
            },
        ),
    ],
)
def test_a_bad_setting_is_a_400_and_changes_nothing(alice, body, errors):
    client = authed_client(alice)
    response = client.patch(SETTINGS, body, format="json")
    assert response.status_code == 400
    assert response.json() == errors
    assert not NotificationSettings.objects.exists()
    assert client.get(SETTINGS).json() == DEFAULTS


def test_settings_need_a_sign_in():
    assert APIClient().get(SETTINGS).status_code == 401


# --- mutes ------------------------------------------------------------------------
def test_mute_and_unmute_a_direct_conversation_and_a_room(alice, make_user):
    bob = make_user("bob")
    room = room_create(creator_id=alice.id, name="team", member_ids=[bob.id])
    client = authed_client(alice)
    until = (timezone.now() + dt.timedelta(hours=1)).replace(microsecond=0)

    direct = client.post(MUTES, {"with": bob.id}, format="json")
    assert (direct.status_code, direct.json()) == (201, {"with": bob.id, "until": None})
    in_room = client.post(MUTES, {"room": room.id, "until": until.isoformat()}, format="json")
    assert in_room.status_code == 201
    assert in_room.json()["room"] == room.id
    assert ConversationMute.objects.get(room=room).until == until

    assert client.post(MUTES, {"with": bob.id}, format="json").status_code == 201  # again: fine
    assert ConversationMute.objects.filter(user=alice).count() == 2

    gone = client.delete(MUTES, {"with": bob.id}, format="json")
    assert gone.status_code == 204
    assert list(ConversationMute.objects.values_list("room_id", flat=True)) == [room.id]
    # DELETE with the very body of the POST (SPEC §10)
    body = {"room": room.id, "until": until.isoformat()}
    assert client.delete(MUTES, body, format="json").status_code == 204
    assert not ConversationMute.objects.exists()


def test_the_conversation_list_says_which_are_muted(alice, make_user):
    from chat.services import message_send

    bob, carol = make_user("bob"), make_user("carol")
    message_send(sender_id=bob.id, receiver_id=alice.id, content="hi")
    message_send(sender_id=carol.id, receiver_id=alice.id, content="hey")
    client = authed_client(alice)
    client.post(MUTES, {"with": bob.id}, format="json")
    client.post(
        MUTES,
        {"with": carol.id, "until": (timezone.now() + dt.timedelta(minutes=5)).isoformat()},
        format="json",
    )
    ConversationMute.objects.filter(counterpart=carol).update(
        until=timezone.now() - dt.timedelta(seconds=1)  # that mute has ended
    )

    listed = {c["user"]["id"]: c["muted"] for c in client.get("/api/chat/conversations/").json()}
    assert listed == {bob.id: True, carol.id: False}


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({}, {"non_field_errors": ["Give exactly one of 'with' and 'room'."]}),
        ({"with": 1, "room": 1}, {"non_field_errors": ["Give exactly one of 'with' and 'room'."]}),
        ({"with": "bob"}, {"with": ["A valid integer is required."]}),
        ({"room": 0}, {"room": ["Ensure this value is greater than or equal to 1."]}),
        (
            {"with": 1, "until": "2000-01-01T00:00:00Z"},
            {"until": ["Must be in the future."]},
        ),
        (
            {"with": 1, "until": "tomorrow"},
            {
                "until": [
                    "Datetime has wrong format. Use one of these formats instead: "
                    "YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z]."
                ]
            },
        ),
        (["with", 1], {"non_field_errors": ["Expected a JSON object."]}),
    ],
)
def test_a_bad_mute_is_a_400_and_stores_nothing(alice, make_user, body, errors):
    bob = make_user("bob")
    if isinstance(body, dict) and body.get("with") == 1:
        body = {**body, "with": bob.id}
    response = authed_client(alice).post(MUTES, body, format="json")
    assert response.status_code == 400
    assert response.json() == errors
    assert not ConversationMute.objects.exists()


def test_muting_yourself_is_a_400(alice):
    response = authed_client(alice).post(MUTES, {"with": alice.id}, format="json")
    assert (response.status_code, response.json()) == (
        400,
        {"with": ["You cannot mute yourself."]},
    )
    assert not ConversationMute.objects.exists()


def test_muting_someone_elses_room_or_an_unknown_user_is_a_404(alice, make_user):
    bob, gone = make_user("bob"), make_user("gone", is_active=False)
    foreign = room_create(creator_id=bob.id, name="bob's")
    client = authed_client(alice)
    for body in ({"room": foreign.id}, {"room": 999_999}, {"with": 999_999}, {"with": gone.id}):
        response = client.post(MUTES, body, format="json")
        assert (response.status_code, response.json()) == (404, {"detail": "Not found."}), body
        assert client.delete(MUTES, body, format="json").status_code == 404
    assert not ConversationMute.objects.exists()


# --- push subscriptions --------------------------------------------------------------
def test_the_vapid_public_key_is_published_without_sign_in(vapid):
    body = APIClient().get("/api/push/vapid-public-key/").json()
    key = webpush.b64url_decode(body["public_key"])
    assert len(key) == 65 and key[0] == 4  # uncompressed P-256
    assert body == {"public_key": webpush.public_key()}


def test_without_a_vapid_key_web_push_is_off(settings):
    settings.QW_VAPID_PRIVATE_KEY = ""
    webpush.vapid.cache_clear()
    try:
        response = APIClient().get("/api/push/vapid-public-key/")
    finally:
        webpush.vapid.cache_clear()
    assert (response.status_code, response.json()) == (
        404,
        {"detail": "Web Push is not configured on this server."},
    )


def test_subscribing_is_idempotent_per_endpoint_and_unsubscribing_deletes(alice, make_user):
    keys = BrowserKeys()
    subscription = keys.subscription("https://142.250.74.10/fcm/send/abc123")
    client = authed_client(alice)
    for _ in range(2):
        response = client.post(SUBSCRIPTIONS, subscription, format="json")
        assert (response.status_code, response.json()) == (
            201,
            {"endpoint": subscription["endpoint"]},
        )
    assert PushSubscription.objects.filter(user=alice).count() == 1

    # Someone else cannot remove it; its owner can, once.
    bob = make_user("bob")
    other = authed_client(bob).delete(
        SUBSCRIPTIONS, {"endpoint": subscription["endpoint"]}, format="json"
    )
    assert other.status_code == 404
    assert (
        client.delete(SUBSCRIPTIONS, {"endpoint": subscription["endpoint"]}, format="json")
    ).status_code == 204
    assert not PushSubscription.objects.exists()


# A public address literal: no DNS needed in the test environment.
def _subscription(endpoint="https://142.250.74.10/fcm/send/abc", **keys) -> dict:
    body = BrowserKeys().subscription(endpoint)
    body["keys"].update(keys)
    return body


OVERSIZED = _subscription("https://142.250.74.10/fcm/send/" + "a" * 900)
OVERSIZED["keys"]["padding"] = "p" * 4000


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        (
            _subscription("http://fcm.googleapis.com/fcm/send/abc"),
            {"endpoint": ["must be an https:// URL"]},
        ),
        (
            _subscription("https://127.0.0.1:8443/push/abc"),
            {"endpoint": ["resolves to a loopback or private address"]},
        ),
        (
            _subscription("https://10.1.2.3/push/abc"),
            {"endpoint": ["resolves to a loopback or private address"]},
        ),
        (
            _subscription("https://[::1]/push/abc"),
            {"endpoint": ["resolves to a loopback or private address"]},
        ),
        (
            _subscription("https://localhost/push/abc"),
            {"endpoint": ["resolves to a loopback or private address"]},
        ),
        (
            _subscription("javascript:alert(1)"),
            {"endpoint": ["must be an https:// URL"]},
        ),
        (
            _subscription(p256dh="not-a-key"),
            {"keys": {"p256dh": ["not a base64url uncompressed P-256 point"]}},
        ),
        (
            _subscription(p256dh=webpush.b64url(b"\x04" + b"\x01" * 64)),  # not on the curve
            {"keys": {"p256dh": ["not a base64url uncompressed P-256 point"]}},
        ),
        (
            _subscription(auth=webpush.b64url(b"short")),
            {"keys": {"auth": ["not a base64url 16-byte secret"]}},
        ),
        (
            {"endpoint": "https://142.250.74.10/fcm/send/abc"},
            {"keys": ["This field is required."]},
        ),
        (
            _subscription("https://142.250.74.10/" + "a" * 1100),
            {"endpoint": ["Ensure this field has no more than 1024 characters."]},
        ),
        (OVERSIZED, {"detail": "The body is over 4096 bytes."}),
        (
            _subscription("https://push.example.invalid/abc"),  # RFC 2606: never resolves
            {"endpoint": ["its host does not resolve"]},
        ),
    ],
)
def test_a_bad_subscription_is_a_400_and_stores_nothing(alice, body, errors):
    response = authed_client(alice).post(SUBSCRIPTIONS, body, format="json")
    assert response.status_code == 400
    assert response.json() == errors
    assert not PushSubscription.objects.exists()


def test_a_local_push_service_is_allowed_only_with_qw_push_allow_local(alice, settings):
    body = _subscription("http://127.0.0.1:9999/push/abc")
    settings.QW_PUSH_ALLOW_LOCAL = True
    assert authed_client(alice).post(SUBSCRIPTIONS, body, format="json").status_code == 201


def test_the_schema_documents_the_offline_endpoints(api_client):
    schema = api_client.get("/api/schema/", {"format": "json"}).json()
    paths = schema["paths"]
    assert set(paths["/api/notification-settings/"]) >= {"get", "patch"}
    assert set(paths["/api/chat/mutes/"]) >= {"post", "delete"}
    assert set(paths["/api/push/subscriptions/"]) >= {"post", "delete"}
    assert "get" in paths["/api/push/vapid-public-key/"]
    assert set(paths["/api/push/subscriptions/"]["post"]["responses"]) >= {
        "201",
        "400",
        "401",
        "415",
    }
    assert set(paths["/api/chat/mutes/"]["post"]["responses"]) >= {
        "201",
        "400",
        "401",
        "404",
        "415",
    }
    assert (
        "security" not in paths["/api/push/vapid-public-key/"]["get"]
        or {} in (paths["/api/push/vapid-public-key/"]["get"]["security"])
    )
    conversation = schema["components"]["schemas"]["Conversation"]
    assert "muted" in conversation["properties"]
