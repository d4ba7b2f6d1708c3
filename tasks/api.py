"""REST for projects and tasks (SPEC §7): parse, authorize, call a service or selector, serialize.

Someone else's project or task is a 404, never a 403: a missing id and a
foreign one look the same. A 403 only tells a participant what their role
does not allow.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from realtime.rest.openapi import QuerySerializer, error_responses
from realtime.rest.pagination import NewestFirstPagination
from tasks import selectors, services
from tasks.models import TaskStatus
from tasks.serializers import (
    ProjectCreateSerializer,
    ProjectSerializer,
    TaskCreateSerializer,
    TaskSerializer,
    TaskStatusSerializer,
    TransitionRefusedSerializer,
)


class NewestFirst(NewestFirstPagination):
    page_size = 100
    max_page_size = 500


def _viewer(request) -> dict:
    return {"user_id": request.user.id, "is_staff": request.user.is_staff}


class ProjectListView(GenericAPIView):
    serializer_class = ProjectSerializer
    pagination_class = NewestFirst

    def get_queryset(self):
        return selectors.projects_visible_to(**_viewer(self.request))

    @extend_schema(
        summary="Projects I take part in (author, or freelancer or watcher of one of its tasks)",
        responses=ProjectSerializer(many=True),
    )
    def get(self, request):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(ProjectSerializer(page, many=True).data)

    @extend_schema(
        summary="Create a project; the caller becomes its author",
        request=ProjectCreateSerializer,
        responses={201: ProjectSerializer},
    )
    def post(self, request):
        body = ProjectCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        project = services.project_create(author=request.user, title=body.validated_data["title"])
        return Response(ProjectSerializer(project).data, status=status.HTTP_201_CREATED)


class ProjectDetailView(APIView):
    @extend_schema(responses=ProjectSerializer)
    def get(self, request, project_id: int):
        project = selectors.project_get(**_viewer(request), project_id=project_id)
        if project is None:
            raise NotFound
        return Response(ProjectSerializer(project).data)


class TaskFilterSerializer(QuerySerializer):
    project = serializers.IntegerField(min_value=1, required=False)
    status = serializers.ChoiceField(choices=TaskStatus.choices, required=False)


class TaskListView(GenericAPIView):
    serializer_class = TaskSerializer
    pagination_class = NewestFirst

    @extend_schema(
        summary="Tasks I take part in (freelancer, project author, watcher; staff: all)",
        parameters=[TaskFilterSerializer],
        responses=TaskSerializer(many=True),
    )
    def get(self, request):
        filters = TaskFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        tasks = selectors.task_list(
            **_viewer(request),
            project_id=filters.validated_data.get("project"),
            status=filters.validated_data.get("status"),
        )
        page = self.paginate_queryset(tasks)
        return self.get_paginated_response(TaskSerializer(page, many=True).data)

    @extend_schema(
        summary="Add a task to a project (its author only)",
        request=TaskCreateSerializer,
        responses={201: TaskSerializer, **error_responses(403)},
    )
    def post(self, request):
        body = TaskCreateSerializer(
            data=request.data,
            visible_projects=selectors.projects_visible_to(**_viewer(request)),
        )
        body.is_valid(raise_exception=True)
        data = body.validated_data
        try:
            task = services.task_create(
                actor=request.user,
                project=data["project"],
                title=data["title"],
                freelancer_id=data.get("freelancer"),
                watcher_ids=data.get("watchers", ()),
            )
        except services.TaskPermissionDenied as error:
            raise PermissionDenied(str(error)) from None
        return Response(TaskSerializer(task).data, status=status.HTTP_201_CREATED)


class TaskDetailView(APIView):
    @extend_schema(responses=TaskSerializer)
    def get(self, request, task_id: int):
        task = selectors.task_get(**_viewer(request), task_id=task_id)
        if task is None:
            raise NotFound
        return Response(TaskSerializer(task).data)


class TaskStatusView(APIView):
    @extend_schema(
        summary="Change a task's status (freelancer, project author or staff)",
        description=(
            "open → in_progress → review → done; review → in_progress; cancelled from "
            "open, in_progress or review. Everyone on the task hears a live "
            "`task_status_update`."
        ),
        request=TaskStatusSerializer,
        responses={
            200: TaskSerializer,
            **error_responses(403),
            409: OpenApiResponse(
                TransitionRefusedSerializer, description="the workflow does not allow this move"
            ),
        },
    )
    def patch(self, request, task_id: int):
        body = TaskStatusSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            task = services.task_set_status(
                task_id=task_id, status=body.validated_data["status"], actor=request.user
            )
        except services.TaskNotFound:
            raise NotFound from None
        except services.TaskPermissionDenied as error:
            raise PermissionDenied(str(error)) from None
        except services.InvalidTransition as refused:
            return Response(
                {"detail": str(refused), "status": refused.current, "allowed": refused.allowed},
                status=status.HTTP_409_CONFLICT,
            )
        return Response(TaskSerializer(task).data)
