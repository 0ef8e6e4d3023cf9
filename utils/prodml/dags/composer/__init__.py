"""Reference DAGs written with Cloud Composer's Google operators (parsed locally, never run)."""
