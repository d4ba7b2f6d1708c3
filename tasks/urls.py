from django.urls import path

from tasks import api

urlpatterns = [
    path("projects/", api.ProjectListView.as_view(), name="project-list"),
    path("projects/<int:project_id>/", api.ProjectDetailView.as_view(), name="project-detail"),
    path("tasks/", api.TaskListView.as_view(), name="task-list"),
    path("tasks/<int:task_id>/", api.TaskDetailView.as_view(), name="task-detail"),
    path("tasks/<int:task_id>/status/", api.TaskStatusView.as_view(), name="task-status"),
]
