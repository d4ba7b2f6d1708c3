from django.contrib import admin

from tasks.models import Project, Task


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


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    list_display = ["id", "title", "project", "freelancer", "status", "updated_at"]
    list_filter = ["status"]
    search_fields = ["title", "project__title", "freelancer__username"]
    list_select_related = ["project", "freelancer"]
    raw_id_fields = ["project", "freelancer"]
    filter_horizontal = ["watchers"]
