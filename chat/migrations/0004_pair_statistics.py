from django.db import migrations

# Without it the planner multiplies the selectivities of LEAST(...) = a and
# GREATEST(...) = b as if independent (23 rows estimated for a pair of 2,497
# in the history bench), prefers a bitmap scan plus a sort of the pair's whole
# history to the backward scan of chat_dm_pair_idx, and a history page costs
# what the pair's history costs (2.7 ms → 0.09 ms with it). The MCV list keeps
# the busy pairs' counts exact.
CREATE = (
    "CREATE STATISTICS IF NOT EXISTS chat_dm_pair_stats (dependencies, mcv) "
    "ON (LEAST(sender_id, receiver_id)), (GREATEST(sender_id, receiver_id)) "
    "FROM chat_chatmessage"
)
DROP = "DROP STATISTICS IF EXISTS chat_dm_pair_stats"
# Room on each page for the new version of a state row: an update that
# changes no indexed column then stays on its page (HOT, no index writes).
FILLFACTOR = "ALTER TABLE chat_conversationstate SET (fillfactor = 70)"


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":  # SQLite has no extended statistics
        schema_editor.execute(CREATE)
        schema_editor.execute("ANALYZE chat_chatmessage")
        schema_editor.execute(FILLFACTOR)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)
        schema_editor.execute("ALTER TABLE chat_conversationstate RESET (fillfactor)")


class Migration(migrations.Migration):
    dependencies = [("chat", "0003_backfill_conversation_state")]

    operations = [migrations.RunPython(create, drop)]
