from shared.worker import run_worker

from .worker import serve

run_worker("trio", serve)
