from django.apps import AppConfig


class TasksConfig(AppConfig):
    name = "tasks"

    def ready(self) -> None:
        from realtime import registry
        from tasks import events, selectors, signals  # noqa: F401  (signal receivers)

        registry.register_durable_event_types(events.TASK_STATUS_UPDATE)
        registry.register_subscription_kind(
            "task",
            group=events.task_group,
            can_subscribe=lambda user_id, is_staff, task_id: selectors.user_can_view_task(
                user_id=user_id, is_staff=is_staff, task_id=task_id
            ),
        )
        registry.register_subscription_kind(
            "project",
            group=events.project_group,
            can_subscribe=lambda user_id, is_staff, project_id: selectors.user_can_view_project(
                user_id=user_id, is_staff=is_staff, project_id=project_id
            ),
        )
        registry.register_urls("api/", "tasks.urls")
