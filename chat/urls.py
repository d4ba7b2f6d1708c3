from django.urls import path

from chat import api, attachments_api, mutes_api

urlpatterns = [
    path("conversations/", api.ConversationList.as_view(), name="chat-conversations"),
    path("messages/", api.MessageListCreate.as_view(), name="chat-messages"),
    path("messages/<int:message_id>/", api.MessageDetail.as_view(), name="chat-message"),
    path("messages/<int:message_id>/read/", api.MessageRead.as_view(), name="chat-message-read"),
    path("unread/", api.Unread.as_view(), name="chat-unread"),
    path("attachments/", attachments_api.AttachmentUpload.as_view(), name="chat-attachments"),
    path(
        "attachments/<int:attachment_id>/",
        attachments_api.AttachmentDetail.as_view(),
        name="chat-attachment",
    ),
    path(
        "attachments/<int:attachment_id>/download/",
        attachments_api.AttachmentDownload.as_view(),
        name="chat-attachment-download",
    ),
    path("rooms/", api.RoomListCreate.as_view(), name="chat-rooms"),
    path("rooms/<int:room_id>/members/", api.RoomMembers.as_view(), name="chat-room-members"),
    path("mutes/", mutes_api.Mutes.as_view(), name="chat-mutes"),
]
