from hub import create_app

celery = create_app({"HUB_PROCESS": "worker"}).extensions["celery"]
