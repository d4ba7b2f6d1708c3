from django.db import migrations


def backfill(apps, schema_editor):
    # The same statements as `manage.py rebuild_conversations`: plain SQL over
    # the message and membership tables, which this migration's schema has.
    from chat.state import state_rebuild

    state_rebuild()


class Migration(migrations.Migration):
    dependencies = [("chat", "0002_conversation_state")]

    operations = [migrations.RunPython(backfill, migrations.RunPython.noop)]
