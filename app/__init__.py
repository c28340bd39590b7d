"""sealchat: the web product around the SEAL library in ``training/``.

Routes -> services -> repositories; Celery tasks are thin and call services.
"""
