"""Settings for the demo shop.

Each virtualenv keeps its own SQLite database beside it (in sys.prefix), so
two targets on one host never share a database unless they share a venv.
VD_DEMO_DB overrides the path.
"""
import os
import sys

SECRET_KEY = "demo-shop-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["localhost", "127.0.0.1"]
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "demo_shop.catalog",
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("VD_DEMO_DB", os.path.join(sys.prefix, "demo-shop.sqlite3")),
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
USE_TZ = True
ROOT_URLCONF = "demo_shop.urls"
