"""Request and response shapes of /api/projects/ and /api/tasks/."""

from __future__ import annotations

from rest_framework import serializers

from realtime.rest.openapi import StrictCharField
from realtime.selectors import active_user_ids
from tasks.models import Project, Task, TaskStatus

MAX_WATCHERS = 100


class ProjectSerializer(serializers.ModelSerializer):
    class Meta:
        model = Project
        fields = ["id", "title", "author", "created_at"]
        read_only_fields = fields


class ProjectCreateSerializer(serializers.Serializer):
    title = StrictCharField(max_length=200)


class TaskSerializer(serializers.ModelSerializer):
    watchers = serializers.PrimaryKeyRelatedField(many=True, read_only=True)

    class Meta:
        model = Task
        fields = [
            "id",
            "project",
            "title",
            "freelancer",
            "watchers",
            "status",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class TaskCreateSerializer(serializers.Serializer):
    """`project` must be one the caller can see; the service decides whether they may add to it."""

    project = serializers.PrimaryKeyRelatedField(queryset=Project.objects.none())
    title = StrictCharField(max_length=200)
    freelancer = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    watchers = serializers.ListField(
        child=serializers.IntegerField(min_value=1), required=False, max_length=MAX_WATCHERS
    )

    def __init__(self, *args, visible_projects=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if visible_projects is not None:
            self.fields["project"].queryset = visible_projects

    # Users are checked in one query per field, not one per id.
    def validate_freelancer(self, value: int | None) -> int | None:
        if value is not None and not active_user_ids(user_ids=[value]):
            raise serializers.ValidationError(f'Invalid pk "{value}" - object does not exist.')
        return value

    def validate_watchers(self, value: list[int]) -> list[int]:
        ids = set(value)
        missing = sorted(ids - active_user_ids(user_ids=ids))
        if missing:
            raise serializers.ValidationError(
                [f'Invalid pk "{user_id}" - object does not exist.' for user_id in missing]
            )
        return sorted(ids)


class TaskStatusSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=TaskStatus.choices)


class TransitionRefusedSerializer(serializers.Serializer):
    """The 409 body: the task's current status and where it may go from there."""

    detail = serializers.CharField()
    status = serializers.ChoiceField(choices=TaskStatus.choices)
    allowed = serializers.ListField(
        child=serializers.CharField(), help_text="the statuses the task may move to next"
    )
