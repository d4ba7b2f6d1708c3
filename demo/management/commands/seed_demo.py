"""Demo users, a project with tasks, a room: what `make run` shows."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from chat.models import Room, RoomMembership
from tasks.models import Project, Task

DEMO_USERS = [
    ("alice", "alice-demo-2026", "project author"),
    ("bob", "bob-demo-2026", "freelancer"),
    ("carol", "carol-demo-2026", "watcher"),
]
ADMIN = ("admin", "admin-demo-2026")


class Command(BaseCommand):
    help = "Create (or reset) the demo users, project, tasks and room."

    @transaction.atomic
    def handle(self, *args, **options):
        User = get_user_model()
        users = {}
        for username, password, _role in DEMO_USERS:
            user, _ = User.objects.get_or_create(
                username=username, defaults={"email": f"{username}@example.com"}
            )
            user.set_password(password)
            user.is_active = True
            user.save()
            users[username] = user
        admin, _ = User.objects.get_or_create(
            username=ADMIN[0], defaults={"email": "admin@example.com"}
        )
        admin.set_password(ADMIN[1])
        admin.is_staff = admin.is_superuser = True
        admin.save()

        project, created = Project.objects.get_or_create(
            title="QuantumWorks website", author=users["alice"]
        )
        if created:
            for title in ["Build API", "Design landing page", "Write docs"]:
                task = Task.objects.create(project=project, title=title, freelancer=users["bob"])
                task.watchers.add(users["carol"])
        room, created = Room.objects.get_or_create(name="website-team", created_by=users["alice"])
        if created:
            RoomMembership.objects.bulk_create(
                [RoomMembership(room=room, user=user) for user in users.values()]
            )

        self.stdout.write("Demo users (username / password / role):")
        for username, password, role in DEMO_USERS:
            self.stdout.write(f"  {username:6} / {password:16} / {role}")
        self.stdout.write(f"  {ADMIN[0]:6} / {ADMIN[1]:16} / staff (http://127.0.0.1:8000/admin/)")
