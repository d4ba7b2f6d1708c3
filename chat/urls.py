from django.urls import path

from chat import api

urlpatterns = [
    path("conversations/", api.ConversationList.as_view(), name="chat-conversations"),
    path("messages/", api.MessageListCreate.as_view(), name="chat-messages"),
    path("messages/<int:message_id>/read/", api.MessageRead.as_view(), name="chat-message-read"),
    path("rooms/", api.RoomListCreate.as_view(), name="chat-rooms"),
    path("rooms/<int:room_id>/members/", api.RoomMembers.as_view(), name="chat-room-members"),
]
