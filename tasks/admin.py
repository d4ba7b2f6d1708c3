from django.contrib import admin

from tasks.models import Project, Task
from tasks.services import mark_status_change


def _announce_status_edit(request, form) -> None:
    """A status edited by staff reaches everyone on the task like any other change.

    The admin is for moderation, so it may set any status; it is not held to
    the workflow the REST endpoint enforces.
    """
    if form.instance.pk and "status" in form.changed_data:
        mark_status_change(form.instance, actor=request.user)


class TaskInline(admin.TabularInline):
    model = Task
    fields = ["title", "freelancer", "status"]
    raw_id_fields = ["freelancer"]
    extra = 0


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["id", "title", "author", "created_at"]
    search_fields = ["title", "author__username"]
    list_select_related = ["author"]
    raw_id_fields = ["author"]
    inlines = [TaskInline]

    def save_formset(self, request, form, formset, change):
        for task_form in formset.forms:
            _announce_status_edit(request, task_form)
        super().save_formset(request, form, formset, change)


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    list_display = ["id", "title", "project", "freelancer", "status", "updated_at"]
    list_filter = ["status"]
    search_fields = ["title", "project__title", "freelancer__username"]
    list_select_related = ["project", "freelancer"]
    raw_id_fields = ["project", "freelancer"]
    filter_horizontal = ["watchers"]

    def save_model(self, request, obj, form, change):
        _announce_status_edit(request, form)
        super().save_model(request, obj, form, change)
