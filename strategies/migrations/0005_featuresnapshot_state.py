from django.db import migrations, models


class Migration(migrations.Migration):
    """The claim state of a bar (issue 18). Rows stored before it are `claimed`: a redelivered
    task resumes them as it did, never skips one whose step may not have finished."""

    dependencies = [
        ("strategies", "0004_signal_undecided_index"),
    ]

    operations = [
        migrations.AddField(
            model_name="featuresnapshot",
            name="state",
            field=models.CharField(
                choices=[("claimed", "Claimed"), ("done", "Done")],
                default="claimed",
                max_length=8,
            ),
        ),
    ]
